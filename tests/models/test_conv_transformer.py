import pytest
import torch
from transformers import AutoConfig, AutoModel

from hf_sqa.models import STUDENT_PRESETS, ConvTransformerForMOSRegression, ConvTransformerMOSConfig, student_config
from hf_sqa.testing import synthetic_speech, tiny_student_config


def _count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def tiny_student():
    torch.manual_seed(0)
    return ConvTransformerForMOSRegression(tiny_student_config()).eval()


def test_largest_preset_is_exactly_distillmos_v7(reference_distillmos):
    ours = ConvTransformerForMOSRegression(student_config("distillmos-v7"))
    assert _count(ours) == _count(reference_distillmos) == 4_133_226
    # same tensor shapes, module by module, once the importer's renaming is applied
    reference_shapes = sorted(tuple(p.shape) for p in reference_distillmos.parameters())
    assert sorted(tuple(p.shape) for p in ours.parameters()) == reference_shapes


def test_presets_span_0p1_to_4p1_million_parameters_in_order():
    counts = [_count(ConvTransformerForMOSRegression(student_config(name))) for name in STUDENT_PRESETS]
    assert counts == sorted(counts, reverse=True)
    assert 4.0e6 < counts[0] < 4.2e6
    assert 0.08e6 < counts[-1] < 0.15e6


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown student preset 'huge'"):
        student_config("huge")


def test_output_shapes_and_range(tiny_student):
    audio = torch.from_numpy(synthetic_speech(9.0))[None].repeat(2, 1)
    with torch.no_grad():
        out = tiny_student(audio)
    assert out.mos.shape == (2,) and out.loss is None
    assert torch.all((out.mos >= 1) & (out.mos <= 5))
    assert out.window_mos.shape == (2, 3) and out.window_mask.all()  # 9 s: overhang 21120 -> 3 windows
    assert torch.allclose(out.window_mos.mean(1), out.mos, atol=1e-6)


@pytest.mark.parametrize("loss_type", ["mse", "l1"])
def test_loss_matches_hand_computation(loss_type):
    model = ConvTransformerForMOSRegression(tiny_student_config(loss_type=loss_type)).eval()
    audio = torch.from_numpy(synthetic_speech(2.0))[None].repeat(2, 1)
    audio[1] *= 0.3
    labels = torch.tensor([4.5, 1.5])
    out = model(audio, labels=labels)
    diff = out.mos.detach() - labels
    expected = (diff**2).mean() if loss_type == "mse" else diff.abs().mean()
    assert torch.allclose(out.loss.detach(), expected, atol=1e-6)
    out.loss.backward()
    assert model.frontend.convs[0].weight.grad is not None


def test_padded_batch_scores_each_clip_as_if_alone(tiny_student):
    long, short = synthetic_speech(11.0, seed=1), synthetic_speech(3.0, seed=2)
    batch = torch.zeros(2, len(long))
    batch[0] = torch.from_numpy(long)
    batch[1, : len(short)] = torch.from_numpy(short)
    batch[1, len(short):] = 0.7  # garbage in the padding must not matter
    mask = torch.zeros_like(batch, dtype=torch.long)
    mask[0] = 1
    mask[1, : len(short)] = 1
    with torch.no_grad():
        together = tiny_student(batch, attention_mask=mask).mos
        alone = torch.stack([tiny_student(torch.from_numpy(c)[None]).mos[0] for c in (long, short)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_gain_independence(tiny_student):
    audio = torch.from_numpy(synthetic_speech(4.0))[None]
    with torch.no_grad():
        assert torch.allclose(tiny_student(audio).mos, tiny_student(0.05 * audio).mos, atol=1e-5)


def test_fused_inference_path_equals_plain_path(tiny_student):
    audio = torch.from_numpy(synthetic_speech(8.0))[None]
    with torch.no_grad():
        fused = tiny_student(audio).mos
    plain = tiny_student(audio).mos.detach()  # grad enabled -> plain conv + LeakyReLU path
    assert torch.allclose(fused, plain, atol=1e-5)


@pytest.mark.parametrize("samples", [1, 319, 16_001, 48_000])
def test_short_clip_costs_the_front_end_of_its_own_samples(tiny_student, samples):
    """CPU inference scores a clip shorter than a window as that window zero-padded (the windowing rule),
    but runs the front end over the clip and the zeros its frames see, not over the whole window; the
    frames of the padding alone come from one cached window of zeros."""
    window = tiny_student.config.window_length
    clip = torch.from_numpy(synthetic_speech(4.0, seed=3)[:samples])
    padded = torch.zeros(window)
    padded[:samples] = clip
    seen = []
    tiny_student.frontend.register_forward_hook(lambda module, args, output: seen.append(args[0].shape[-1]))
    with torch.no_grad():
        tiny_student(torch.from_numpy(synthetic_speech(2.0, seed=4)))  # caches the frames of silence
        seen.clear()
        short = tiny_student(clip).mos
        assert seen and max(seen) < window  # the clip's own samples (+ the receptive field's zeros) only
        whole = tiny_student(padded).mos  # a full window: the front end over all of it
    assert seen[-1] == window
    training_path = tiny_student(clip).mos.detach()  # grad enabled: the whole padded window, plain convs
    assert torch.allclose(short, whole, atol=1e-5) and torch.allclose(short, training_path, atol=1e-5)


def test_short_clip_with_an_even_conv_kernel_scores_as_its_padded_window():
    """An even kernel's receptive field is lopsided: such a model runs the whole padded window."""
    torch.manual_seed(0)
    model = ConvTransformerForMOSRegression(tiny_student_config(conv_kernel_size=4)).eval()
    clip = torch.from_numpy(synthetic_speech(1.5, seed=5))
    padded = torch.zeros(model.config.window_length)
    padded[: len(clip)] = clip
    with torch.no_grad():
        assert torch.allclose(model(clip).mos, model(padded).mos, atol=1e-5)


def test_save_reload_roundtrip(tiny_student, tmp_path):
    tiny_student.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(reloaded, ConvTransformerForMOSRegression)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), ConvTransformerMOSConfig)
    audio = torch.from_numpy(synthetic_speech(3.0))[None]
    with torch.no_grad():
        assert torch.equal(tiny_student(audio).mos, reloaded.eval()(audio).mos)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(conv_channels=[4, 4], conv_freq_strides=[1], conv_time_strides=[1, 1]), "one entry per conv layer"),
        (dict(head_hidden_size=9, head_num_heads=1), "must be even"),
        (dict(head_hidden_size=12, head_num_heads=5), "not divisible"),
        (dict(loss_type="huber"), "loss_type"),
        (dict(conv_channels=[4] * 9, conv_freq_strides=[2] * 9, conv_time_strides=[1] * 9), "no"),
        (dict(window_length=0), "window_length must be positive"),
    ],
)
def test_bad_config_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        tiny_student_config(**fields)


@pytest.mark.parametrize("family", ["conv_transformer", "xlsr"])
def test_windowed_models_give_each_windows_hidden_states(family):
    """The windowed models (the teacher families) return their head's hidden states per window too (what
    pruning's fine-tuning matches): the projection and each layer, every frame of each window (a short clip's
    zero padding included), and the same scores as without them."""
    from hf_sqa.models import XLSRForMOSRegression
    from hf_sqa.testing import tiny_xlsr_config

    torch.manual_seed(0)
    model = (ConvTransformerForMOSRegression(tiny_student_config(head_num_layers=2)) if family == "conv_transformer"
             else XLSRForMOSRegression(tiny_xlsr_config(head_num_layers=2))).eval()
    clips = [torch.from_numpy(synthetic_speech(seconds, seed=i)).float() for i, seconds in enumerate((8.5, 2.0))]
    batch = torch.zeros(2, len(clips[0]))
    batch[0], batch[1, : len(clips[1])] = clips[0], clips[1]
    mask = (torch.arange(batch.shape[1])[None] < torch.tensor([len(c) for c in clips])[:, None]).long()
    with torch.no_grad():
        plain = model(batch, attention_mask=mask)
        out = model(batch, attention_mask=mask, output_hidden_states=True)
    windows = int(out.window_mask.sum())
    assert windows == 3  # 8.5 s: two windows at most 1 s apart, 2 s: one
    assert len(out.hidden_states) == 1 + 2
    frames = out.hidden_states[0].shape[1]
    assert all(h.shape == (windows, frames, model.config.head_hidden_size) for h in out.hidden_states)
    assert out.hidden_mask.shape == (windows, frames) and bool(out.hidden_mask.all())
    torch.testing.assert_close(out.mos, plain.mos)
    with torch.no_grad():  # the short clip's window alone: the same hidden states as in the batch
        alone = model(clips[1], output_hidden_states=True)
    torch.testing.assert_close(alone.hidden_states[-1][0], out.hidden_states[-1][2], atol=1e-5, rtol=1e-4)
