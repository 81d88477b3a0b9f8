"""The built wheel carries what an installed hf_sqa needs at run time: the shipped `fast` model (weights,
config, flat code, card) and the card templates."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT / "checkpoints" / "hf-sqa-fast" / "config.json").is_file(),
                    reason="checkpoints/hf-sqa-fast is not built")
def test_wheel_contains_the_fast_model(tmp_path):
    source = tmp_path / "src"  # a copy, so the build leaves no build/ or egg-info in the repository
    shutil.copytree(ROOT, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", ".git", "runs", "data", "build", "*.egg-info",
                                                  "__pycache__", "test-artifacts"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source)], check=True)
    wheel = next((tmp_path / "dist").glob("hf_sqa-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (ROOT / "checkpoints" / "hf-sqa-fast").iterdir()}
    assert {"model.safetensors", "config.json", "README.md", "modeling_fast_mos.py"} <= shipped
    assert {f"hf_sqa/checkpoints/hf-sqa-fast/{name}" for name in shipped} <= names
    assert "hf_sqa/model_cards/student.md" in names


@pytest.mark.skipif(not (ROOT / "checkpoints" / "hf-sqa-fast" / "config.json").is_file(),
                    reason="checkpoints/hf-sqa-fast is not built")
def test_shipped_flat_code_is_the_package_code():
    """trust_remote_code users run the checkpoint's copies: they must be what hf_sqa runs."""
    copies = sorted((ROOT / "checkpoints" / "hf-sqa-fast").glob("*.py"))
    assert copies
    for copy in copies:
        assert copy.read_text() == (ROOT / "hf_sqa" / "models" / copy.name).read_text(), copy.name
