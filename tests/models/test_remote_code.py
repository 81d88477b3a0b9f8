"""Saved checkpoints load with trust_remote_code=True where hf_sqa cannot be imported."""

import json
import re

import numpy as np
import pytest
import torch

from hf_sqa.models import ConvTransformerForMOSRegression, FastMOSForMOSRegression, XLSRForMOSRegression
from hf_sqa.testing import (
    score_without_hf_sqa, synthetic_speech, tiny_fast_config, tiny_student_config, tiny_xlsr_config,
)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ConvTransformerForMOSRegression(tiny_student_config()),
        lambda: XLSRForMOSRegression(tiny_xlsr_config(feature_layers=[1, 3], layer_fusion="fusion")),
        lambda: FastMOSForMOSRegression(tiny_fast_config()),
    ],
    ids=["student", "teacher", "fast"],
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
    with torch.no_grad():
        expected = model(torch.from_numpy(audio)).mos.tolist()

    result = score_without_hf_sqa(tmp_path / "ckpt", audio, tmp_path)
    assert result["class"] == type(model).__name__
    assert np.allclose(result["mos"], expected, atol=1e-6)
    # the feature extractor's files travel with the model's (preprocessor_config.json + flat code)
    assert result["extractor_class"] == "MOSFeatureExtractor"
    assert np.allclose(result["extracted_mos"], expected, atol=1e-6)
