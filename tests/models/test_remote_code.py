"""Saved checkpoints load with trust_remote_code=True where hf_sqa cannot be imported."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from hf_sqa.models import ConvTransformerForMOSRegression, XLSRForMOSRegression
from hf_sqa.testing import synthetic_speech, tiny_student_config, tiny_xlsr_config

LOAD_WITHOUT_HF_SQA = r"""
import json, sys
sys.modules["hf_sqa"] = None  # any `import hf_sqa` now raises ImportError
import numpy as np, torch
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert not type(model).__module__.startswith("hf_sqa"), type(model).__module__
audio = torch.from_numpy(np.load(sys.argv[2]))
with torch.no_grad():
    mos = model(audio).mos.tolist()
print(json.dumps({"module": type(model).__module__, "class": type(model).__name__, "mos": mos}))
"""


@pytest.mark.parametrize(
    "build",
    [
        lambda: ConvTransformerForMOSRegression(tiny_student_config()),
        lambda: XLSRForMOSRegression(tiny_xlsr_config(feature_layers=[1, 3], layer_fusion="fusion")),
    ],
    ids=["student", "teacher"],
)
def test_checkpoint_scores_without_hf_sqa(build, tmp_path):
    torch.manual_seed(0)
    model = build().eval()
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel"}
    code_files = sorted((tmp_path / "ckpt").glob("*.py"))
    assert {f"{name.split('.')[0]}.py" for name in config["auto_map"].values()} <= {f.name for f in code_files}
    for code_file in code_files:
        assert not re.search(r"^\s*(from|import)\s+hf_sqa", code_file.read_text(), re.M), code_file.name
    audio = np.stack([synthetic_speech(9.0, seed=1), synthetic_speech(9.0, seed=2)])
    np.save(tmp_path / "audio.npy", audio)
    with torch.no_grad():
        expected = model(torch.from_numpy(audio)).mos.tolist()

    run = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_HF_SQA, str(tmp_path / "ckpt"), str(tmp_path / "audio.npy")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["class"] == type(model).__name__
    assert np.allclose(result["mos"], expected, atol=1e-6)
