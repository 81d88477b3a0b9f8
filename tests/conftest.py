"""Shared fixtures. Every test runs with its own transformers modules cache, so nothing touches ~/.cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_sqa.testing import synthetic_speech, write_clip

SHARED_MOS_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bvrnn_mushra"


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path_factory.getbasetemp() / "hf_modules"))


@pytest.fixture(scope="session")
def distillmos_dir(tmp_path_factory):
    """The Distill-MOS import, converted once per session from the installed wheel (the shipped
    checkpoints/distillmos must equal it)."""
    from hf_sqa.convert import convert_distillmos

    path = tmp_path_factory.mktemp("distillmos") / "converted"
    convert_distillmos(path)
    return path


@pytest.fixture(scope="session")
def distillmos_model(distillmos_dir):
    from hf_sqa import load_model

    return load_model(distillmos_dir)


@pytest.fixture(scope="session")
def reference_distillmos():
    """The original `distillmos` model with its released weights (installed by `make test`)."""
    from hf_sqa.testing import import_distillmos

    return import_distillmos().ConvTransformerSQAModel().eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A saved tiny random ConvTransformer: a fast stand-in model for scoring and labelling jobs."""
    import torch

    from hf_sqa.models import ConvTransformerForMOSRegression
    from hf_sqa.testing import tiny_student_config

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    ConvTransformerForMOSRegression(tiny_student_config()).save_pretrained(path)
    return path


@pytest.fixture
def clip_folder(tmp_path):
    """Three good clips of different quality and lengths (one a 44.1 kHz stereo FLAC)."""
    import numpy as np

    folder = tmp_path / "clips"
    write_clip(folder / "clean.wav", synthetic_speech(3.0, seed=1))
    write_clip(folder / "noisy.wav", synthetic_speech(9.0, seed=2, noise_db=0.0))
    stereo = np.stack([synthetic_speech(2.0, 44100, seed=3), synthetic_speech(2.0, 44100, seed=4)], axis=1)
    write_clip(folder / "sub" / "stereo.flac", stereo, 44100)
    return folder
