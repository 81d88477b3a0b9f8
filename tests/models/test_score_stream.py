"""Every model family scores a clip streamed block by block exactly as `forward` scores the whole clip."""

import pytest
import torch

from hf_sqa.audio import AudioStream
from hf_sqa.models import ConvTransformerForMOSRegression, FastMOSForMOSRegression, XLSRForMOSRegression
from hf_sqa.testing import synthetic_speech, tiny_fast_config, tiny_student_config, tiny_xlsr_config


def _model(family):
    torch.manual_seed(0)
    if family == "conv_transformer":
        return ConvTransformerForMOSRegression(tiny_student_config()).eval()
    if family == "fast":
        return FastMOSForMOSRegression(tiny_fast_config(frontend_chunk_frames=97)).eval()
    return XLSRForMOSRegression(tiny_xlsr_config()).eval()


def _streamed(model, samples, hop=None, block_seconds=0.77):
    stream = AudioStream(samples, sampling_rate=16000, block_seconds=block_seconds)
    with torch.inference_mode():
        pairs = list(model.score_stream(stream.blocks(), stream.scan(), hop))
    return [start for start, _ in pairs], torch.stack([score for _, score in pairs])


@pytest.mark.parametrize("family", ["conv_transformer", "fast", "xlsr"])
@pytest.mark.parametrize("seconds", [0.25, 3.0, 7.68, 20.0])
def test_streamed_scores_equal_the_whole_clip(family, seconds):
    model = _model(family)
    clip = synthetic_speech(seconds, seed=int(seconds * 10))
    starts, scores = _streamed(model, clip)
    with torch.inference_mode():
        whole = model(torch.from_numpy(clip))
    assert starts == whole.window_starts[0].tolist()
    assert torch.allclose(scores, whole.window_mos[0], atol=1e-6)
    assert abs(scores.double().mean().item() - whole.mos.item()) < 1e-6


@pytest.mark.parametrize("family, minutes, hops", [("conv_transformer", 10, (122880,)), ("fast", 1.5, (None,))])
def test_long_clips_streamed_equal_the_whole_clip(family, minutes, hops):
    """Many 30 s blocks. (The tiny models' front ends are slow for their size — small convolutions over the
    full spectrogram — so 10 minutes run the windowed model at a 7.68 s hop, 80 windows, and the fast
    one, whose front end runs over every sample, gets 90 s.)"""
    model = _model(family)
    clip = synthetic_speech(60.0 * minutes, seed=5)
    for hop in hops:
        starts, scores = _streamed(model, clip, hop, block_seconds=30.0)
        with torch.inference_mode():
            whole = model(torch.from_numpy(clip), window_max_hop=hop)
        assert starts == whole.window_starts[0].tolist()
        assert torch.allclose(scores, whole.window_mos[0], atol=1e-6)
        assert abs(scores.double().mean().item() - whole.mos.item()) < 1e-6
