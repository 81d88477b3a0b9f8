"""The built wheel carries what an installed hf_sqa needs at run time: the built-in models (`distillmos`,
`fast`: weights, config, feature extractor, flat code, card, licence) and the card templates; installed
alone, its default model scores."""

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from hf_sqa.scoring import PACKAGED_MODELS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "checkpoints" / folder for folder in PACKAGED_MODELS.values()]

_SCORE_IN_FRESH_VENV = r"""
import json, sys
sys.modules["distillmos"] = None  # the distillmos wheel must not be needed (any import of it fails)
import hf_sqa
from hf_sqa.scoring import packaged_model_path
print(json.dumps({"hf_sqa": hf_sqa.__file__, "model": str(packaged_model_path("distillmos")),
                  "mos": float(hf_sqa.score(sys.argv[1])[0])}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "src"  # a copy, so the build leaves no build/ or egg-info in the repository
    shutil.copytree(ROOT, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", ".git", "runs", "data", "build", "*.egg-info",
                                                  "__pycache__", "test-artifacts"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source)], check=True)
    return next((tmp_path / "dist").glob("hf_sqa-*.whl"))


def test_wheel_contains_the_builtin_models(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in SHIPPED:
        shipped = {p.name for p in folder.iterdir()}
        assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md"} <= shipped, folder.name
        assert {f"hf_sqa/checkpoints/{folder.name}/{name}" for name in shipped} <= names
    assert "hf_sqa/checkpoints/distillmos/LICENSE" in names
    assert "hf_sqa/model_cards/student.md" in names


def test_shipped_flat_code_is_the_package_code(tmp_path):
    """trust_remote_code users run the checkpoints' copies: they must be what hf_sqa runs, and all of what
    saving the same model writes today."""
    import hf_sqa

    for folder in SHIPPED:
        copies = sorted(folder.glob("*.py"))
        for copy in copies:
            assert copy.read_text() == (ROOT / "hf_sqa" / "models" / copy.name).read_text(), copy.name
        model = hf_sqa.load_model(str(folder))
        model.save_pretrained(tmp_path / folder.name)
        assert [p.name for p in copies] == sorted(p.name for p in (tmp_path / folder.name).glob("*.py"))
        assert (json.loads((folder / "preprocessor_config.json").read_text())
                == json.loads((tmp_path / folder.name / "preprocessor_config.json").read_text()))


def test_the_installed_wheel_alone_scores_with_the_default_model(wheel, tmp_path):
    """`pip install` of the wheel into a fresh venv (no distillmos wheel, no conversion, no download)
    gives a working default model. The other dependencies (torch from the local wheel, transformers, ...)
    come from this environment through a .pth file, so the test needs no index."""
    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=True)
    python = fresh / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # appended after the fresh site-packages: the installed hf_sqa comes first; .pth files of this
    # environment (the editable hf_sqa) are not run from an appended path
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    clip = ROOT / "examples" / "clean.wav"
    run = subprocess.run([str(python), "-c", _SCORE_IN_FRESH_VENV, str(clip)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["hf_sqa"].startswith(site) and result["model"].startswith(site)
    import hf_sqa

    assert result["mos"] == pytest.approx(float(hf_sqa.score(str(clip))[0]), abs=1e-6)
