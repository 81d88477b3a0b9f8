"""Reusable test dummies: tiny random configs, synthetic clips, and the `distillmos` reference import.

Used by the test suite and handy for downstream tests; nothing here touches the network.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import soundfile as sf

from .data.synth import speech_like
from .models import ConvTransformerMOSConfig, FastMOSConfig, XLSRMOSConfig


def tiny_student_config(**overrides) -> ConvTransformerMOSConfig:
    """A ConvTransformer of a few thousand parameters with the real front-end geometry."""
    fields = dict(
        conv_channels=[4, 4, 8, 8, 8, 8], head_hidden_size=8, head_num_layers=1, head_num_heads=2,
        head_ffn_size=16,
    )
    return ConvTransformerMOSConfig(**{**fields, **overrides})


def tiny_fast_config(**overrides) -> FastMOSConfig:
    """The tiny student's layers as a fast student (clip-level front end)."""
    fields = dict(
        conv_channels=[4, 4, 8, 8, 8, 8], head_hidden_size=8, head_num_layers=1, head_num_heads=2,
        head_ffn_size=16,
    )
    return FastMOSConfig(**{**fields, **overrides})


def tiny_wav2vec2_config(hidden_size: int = 32, num_hidden_layers: int = 4, **overrides) -> dict:
    """A wav2vec 2.0 backbone config (XLS-R style: stable layer norm, layer-norm conv encoder) that runs
    in milliseconds but keeps the real 320x downsampling (7 conv layers, strides 5,2,2,2,2,2,2)."""
    fields = dict(
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        conv_dim=[16] * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
        conv_bias=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
        mask_time_prob=0.0,
    )
    return {**fields, **overrides}


def tiny_xlsr_config(feature_layers=(2,), layer_fusion="single", **overrides) -> XLSRMOSConfig:
    wav2vec2 = overrides.pop("wav2vec2_config", None) or tiny_wav2vec2_config()
    fields = dict(head_hidden_size=8, head_num_layers=1, head_num_heads=2, head_ffn_size=16)
    return XLSRMOSConfig(
        wav2vec2_config=wav2vec2, feature_layers=list(feature_layers) if feature_layers else None,
        layer_fusion=layer_fusion, **{**fields, **overrides},
    )


def synthetic_speech(seconds: float, sampling_rate: int = 16000, seed: int = 0, noise_db: float | None = None) -> np.ndarray:
    """A speech-like clip (see `hf_sqa.data.synth.speech_like`), optionally with white noise at `noise_db` dB SNR."""
    return speech_like(seconds, sampling_rate=sampling_rate, seed=seed, noise_db=noise_db)


def write_clip(path: str | Path, samples: np.ndarray, sampling_rate: int = 16000, **soundfile_kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, sampling_rate, **soundfile_kwargs)
    return path


def write_noisy_mos_folder(folder: str | Path, count: int, seconds: float = 2.0, seed: int = 0) -> Path:
    """A labelled MOS folder (labels.csv: path,mos,condition) of `count` speech-like clips of `seconds` to
    `seconds` + 1 s in white noise at SNRs spread over -5..30 dB, with MOS = 1 + 4 (SNR + 5) / 35 and the
    condition "low" or "high" SNR: a corpus on which a quality model has something to find."""
    folder = Path(folder)
    rows = ["path,mos,condition"]
    for i, snr in enumerate(np.linspace(-5, 30, count)):
        name = f"clip{i:02d}.wav"
        write_clip(folder / name, synthetic_speech(seconds + 0.5 * (i % 3), seed=seed * 1000 + i, noise_db=float(snr)))
        rows.append(f"{name},{1 + 4 * (snr + 5) / 35:.3f},{'low' if snr < 12.5 else 'high'}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def import_distillmos():
    """The `distillmos` package (reference implementation), imported without torchaudio.

    It imports torchaudio at module level only for its CLI; a stand-in module is placed in sys.modules
    for the import and removed afterwards, so nothing else mistakes it for a real torchaudio.
    """
    import transformers  # noqa: F401  (import first: it probes for torchaudio itself)

    if "distillmos" in sys.modules:
        return sys.modules["distillmos"]
    had_torchaudio = "torchaudio" in sys.modules
    if not had_torchaudio:
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        return importlib.import_module("distillmos")
    finally:
        if not had_torchaudio:
            del sys.modules["torchaudio"]


_SCORE_WITHOUT_HF_SQA = r"""
import json, sys
sys.modules["hf_sqa"] = None  # any `import hf_sqa` now raises ImportError
import numpy as np, torch
from transformers import AutoFeatureExtractor, AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
extractor = AutoFeatureExtractor.from_pretrained(sys.argv[1], trust_remote_code=True)
for loaded in (model, extractor):
    assert not type(loaded).__module__.startswith("hf_sqa"), type(loaded).__module__
audio = np.load(sys.argv[2])
with torch.no_grad():
    mos = model(torch.from_numpy(audio)).mos.tolist()
    features = extractor(list(audio), sampling_rate=model.config.sampling_rate, return_tensors="pt")
    extracted_mos = model(**features).mos.tolist()
print(json.dumps({"module": type(model).__module__, "class": type(model).__name__, "mos": mos,
                  "extractor_class": type(extractor).__name__, "extracted_mos": extracted_mos}))
"""


def score_without_hf_sqa(checkpoint: str | Path, audio: np.ndarray, workdir: str | Path) -> dict:
    """Load `checkpoint` (model and feature extractor) with trust_remote_code in a fresh Python where `import
    hf_sqa` fails, score `audio` (batch, samples) directly and through the feature extractor, and return
    {"module", "class", "mos", "extractor_class", "extracted_mos"}; raises with the child's stderr."""
    audio_file = Path(workdir) / "audio-for-remote-code.npy"
    np.save(audio_file, audio)
    run = subprocess.run([sys.executable, "-c", _SCORE_WITHOUT_HF_SQA, str(checkpoint), str(audio_file)],
                         capture_output=True, text=True, cwd=workdir, timeout=300)
    if run.returncode != 0:
        raise RuntimeError(f"loading {checkpoint} without hf_sqa failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])
