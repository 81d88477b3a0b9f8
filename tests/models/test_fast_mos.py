"""The fast student: clip-level front end in chunks, windows on the shared frames, batching, loading."""

import pytest
import torch

from hf_sqa.models import FastMOSConfig, FastMOSForMOSRegression, student_config
from hf_sqa.models.modeling_fast_mos import reflect_padded_slice
from hf_sqa.models.windowing import window_starts
from hf_sqa.testing import synthetic_speech, tiny_fast_config
from hf_sqa.training.fast_student import fast_config, fast_student_from


@pytest.fixture
def model():
    torch.manual_seed(0)
    return FastMOSForMOSRegression(tiny_fast_config()).eval()


def test_reflect_padded_slice_equals_padding_the_whole_signal():
    x = torch.randn(1000)
    full = torch.nn.functional.pad(x[None, None], (80, 80), mode="reflect")[0, 0]
    for start, stop in ((0, 300), (50, 700), (700, 1160), (0, 1160)):
        assert torch.equal(reflect_padded_slice(x, 80, start, stop), full[start:stop])


@pytest.mark.parametrize("seconds", [0.3, 3.0, 25.0])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_front_end_equals_one_pass(model, seconds, chunk):
    clip = torch.from_numpy(synthetic_speech(seconds, seed=2))
    with torch.no_grad():
        model.config.frontend_chunk_frames = 10**6
        whole = model.clip_features(clip)
        model.config.frontend_chunk_frames = chunk
        chunked = model.clip_features(clip)
    assert whole.shape == (model.config.output_frames(len(clip)), model.frontend.output_size)
    assert torch.allclose(chunked, whole, atol=1e-5)


def test_chunked_front_end_with_gradients_for_training(model):
    clip = torch.from_numpy(synthetic_speech(5.0, seed=3))
    model.train()
    model.config.frontend_chunk_frames = 37
    model.clip_features(clip).sum().backward()  # the autograd path (no fused kernels) also chunks
    assert all(p.grad is not None for p in model.frontend.parameters())


def test_clip_scores_the_same_alone_and_in_a_padded_batch(model):
    clips = [synthetic_speech(s, seed=i) for i, s in enumerate((2.0, 9.5, 0.4, 20.0))]
    length = max(len(c) for c in clips)
    batch = torch.zeros(len(clips), length)
    mask = torch.zeros(len(clips), length, dtype=torch.long)
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = torch.from_numpy(clip)
        mask[row, : len(clip)] = 1
    with torch.no_grad():
        together = model(batch, attention_mask=mask)
        alone = [model(torch.from_numpy(c)) for c in clips]
    assert torch.allclose(together.mos, torch.cat([a.mos for a in alone]), atol=1e-6)
    for row, single in enumerate(alone):
        count = int(together.window_mask[row].sum())
        assert count == single.window_mos.shape[1]
        assert torch.allclose(together.window_mos[row, :count], single.window_mos[0], atol=1e-6)


@pytest.mark.parametrize("chunk", [5, 64, 10**6])
def test_streamed_inference_equals_scoring_all_frames_at_once(model, chunk):
    """Inference streams each clip (windows scored as the front end reaches them, earlier frames dropped);
    with gradients on, the same eval-mode model takes the path that keeps every frame."""
    clips = [synthetic_speech(s, seed=i) for i, s in enumerate((0.4, 7.0, 9.5, 31.0))]
    with torch.no_grad():  # a head that reacts to its input, and BatchNorm statistics of these clips
        for p in model.head.parameters():
            p.normal_(0, 0.3)
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.reset_running_stats()
                module.momentum = None  # cumulative average
        for clip in clips:
            model(torch.from_numpy(clip))
        model.eval()
    model.config.frontend_chunk_frames = chunk
    for clip in clips:
        with torch.no_grad():
            streamed = model(torch.from_numpy(clip))
        everything = model(torch.from_numpy(clip))
        assert everything.window_mos.requires_grad  # really the other path
        assert torch.equal(streamed.window_starts, everything.window_starts)
        assert torch.allclose(streamed.window_mos, everything.window_mos.detach(), atol=1e-5)
        assert torch.allclose(streamed.mos, everything.mos.detach(), atol=1e-5)
    assert streamed.window_mos.std() > 1e-2  # windows of the long clip differ: the comparison has teeth


def test_windows_follow_the_teachers_rule_so_dense_labels_line_up(model):
    cfg = model.config
    for seconds in (0.5, 7.68, 7.7, 10.0, 31.3):
        samples = int(seconds * cfg.sampling_rate)
        windows = model.window_frames(samples)
        assert [w[0] for w in windows] == window_starts(samples, cfg.window_length, cfg.window_max_hop)
        total = cfg.frames_per_window if model.pads(samples) else cfg.output_frames(samples)
        for start, first, count in windows:
            assert abs(first * cfg.samples_per_frame - start) <= cfg.samples_per_frame  # nearest frame, or clamped
            assert 0 < count <= cfg.frames_per_window and first + count <= total
        with torch.no_grad():
            out = model(torch.from_numpy(synthetic_speech(seconds, seed=1)))
        assert out.window_mos.shape[1] == len(windows)
        assert torch.allclose(out.mos, out.window_mos.nanmean(dim=1))


@pytest.mark.parametrize("seconds", [0.05, 0.3, 3.0, 7.5, 7.679])
def test_short_clip_features_equal_the_zero_padded_windows(model, seconds):
    """The front end runs over a short clip and a few frames of zeros only; the rest of the window is the
    cached frames of silence, exactly what a pass over the whole zero-padded window gives."""
    cfg = model.config
    cfg.pad_short_clips = True
    clip = torch.from_numpy(synthetic_speech(seconds, seed=4))
    with torch.no_grad():
        padded = torch.nn.functional.pad(clip, (0, cfg.window_length - len(clip)))
        whole = model.clip_features(padded, model.clip_level(clip))
        assert whole.shape[0] == cfg.frames_per_window
        assert torch.allclose(model.clip_frames(clip, model.clip_level(clip)), whole, atol=1e-5)


def test_short_clips_score_as_the_windowed_teacher_scores_them():
    """Same weights, a clip shorter than a window: the fast student's score is the ConvTransformer's (which
    zero-pads the window and runs the front end over all of it); without padding it is not."""
    from hf_sqa.models import ConvTransformerForMOSRegression

    torch.manual_seed(1)
    windowed = ConvTransformerForMOSRegression(student_config("tiny")).eval()
    with torch.no_grad():
        for p in windowed.head.parameters():  # a head that reacts to where the speech ends
            p.normal_(0, 0.3)
    fast = fast_student_from(windowed).eval()
    fast.config.pad_short_clips = True
    clips = [torch.from_numpy(synthetic_speech(s, seed=i)) for i, s in enumerate((0.6, 2.5, 6.0))]
    with torch.no_grad():
        reference = torch.cat([windowed(c).mos for c in clips])
        assert torch.allclose(torch.cat([fast(c).mos for c in clips]), reference, atol=1e-5)
        fast.config.pad_short_clips = False
        assert fast.window_frames(len(clips[0])) == [(0, 0, fast.config.output_frames(len(clips[0])))]
        assert (torch.cat([fast(c).mos for c in clips]) - reference).abs().max() > 1e-3


def test_cached_silence_frames_follow_the_weights(model):
    model.config.pad_short_clips = True
    clip = torch.from_numpy(synthetic_speech(2.0, seed=6))
    with torch.no_grad():
        before = model(clip).mos
        for p in model.frontend.parameters():
            p.mul_(1.5)  # in place, as an optimiser step or load_state_dict changes them
        after = model(clip).mos
        model._silence_cache = None
        assert torch.allclose(model(clip).mos, after)
    assert not torch.allclose(before, after)


def test_scores_do_not_depend_on_gain(model):
    clip = torch.from_numpy(synthetic_speech(4.0, seed=5))
    with torch.no_grad():
        assert torch.allclose(model(clip).mos, model(0.05 * clip).mos, atol=1e-5)


def test_distillmos_layers_load_into_the_fast_student():
    teacher_layers = student_config("distillmos-v7")
    from hf_sqa.models import ConvTransformerForMOSRegression

    source = ConvTransformerForMOSRegression(teacher_layers)
    fast = fast_student_from(source)
    assert isinstance(fast, FastMOSForMOSRegression)
    for name, tensor in source.state_dict().items():
        assert torch.equal(fast.state_dict()[name], tensor)


def test_fast_preset_is_under_a_million_parameters():
    from hf_sqa.complexity import parameter_count

    assert parameter_count(FastMOSForMOSRegression(fast_config("fast"))) < 1_000_000


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="frontend_chunk_frames"):
        FastMOSConfig(frontend_chunk_frames=0)
    with pytest.raises(ValueError, match="level_normalization"):
        FastMOSConfig(level_normalization="rms")


def test_silence_frames_cached_in_inference_mode_do_not_reach_training(model):
    """An evaluation under inference_mode between training steps (its cached frames reused by the next step)
    leaves training working."""
    model.config.pad_short_clips = True
    clip = torch.from_numpy(synthetic_speech(2.0, seed=7))
    with torch.inference_mode():
        model(clip)
    model.train()
    model(clip).mos.sum().backward()
    assert all(p.grad is not None for p in model.head.parameters() if p.requires_grad)


def test_hidden_states_leave_scores_unchanged_and_follow_each_window(model):
    """output_hidden_states: the same MOS; per window the head's projection and every layer's output,
    zero after the window's frames; a clip's hidden states are the same alone and in a padded batch."""
    clips = [synthetic_speech(s, seed=i) for i, s in enumerate((1.5, 11.0))]
    batch = torch.zeros(2, max(len(c) for c in clips))
    mask = torch.zeros_like(batch, dtype=torch.long)
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = torch.from_numpy(clip)
        mask[row, : len(clip)] = 1
    with torch.no_grad():
        plain = model(batch, attention_mask=mask)
        hidden = model(batch, attention_mask=mask, output_hidden_states=True)
        short = model(torch.from_numpy(clips[0]), output_hidden_states=True)
    assert torch.allclose(hidden.mos, plain.mos, atol=1e-6)
    windows = int(plain.window_mask.sum())
    assert len(hidden.hidden_states) == 1 + model.config.head_num_layers
    frames = model.config.frames_per_window
    assert all(h.shape == (windows, frames, model.config.head_hidden_size) for h in hidden.hidden_states)
    counts = [count for clip in clips for _, _, count in model.window_frames(len(clip))]
    assert hidden.hidden_mask.sum(1).tolist() == counts and counts[0] < frames  # the short clip: its frames only
    assert all(float(h[~hidden.hidden_mask].abs().max()) == 0 for h in hidden.hidden_states)
    for alone, together in zip(short.hidden_states, hidden.hidden_states):
        assert torch.allclose(alone[0], together[0], atol=1e-5)


def test_hidden_states_of_a_padding_teacher_cover_the_whole_window(model):
    model.config.pad_short_clips = True
    with torch.no_grad():
        padded = model(torch.from_numpy(synthetic_speech(1.5, seed=0)), output_hidden_states=True)
    assert bool(padded.hidden_mask.all()) and padded.hidden_mask.shape == (1, model.config.frames_per_window)


def test_training_buckets_score_each_window_as_alone(model, monkeypatch):
    """With gradients (training on a GPU), windows of similar frame counts share a head call (padded and
    masked): every window's score and hidden states equal the inference path's, which runs each count on
    its own. Run here with the CPU set to the GPU's buckets."""
    from hf_sqa.models.modeling_fast_mos import TRAINING_BUCKET_FRAMES

    monkeypatch.setitem(TRAINING_BUCKET_FRAMES, "cpu", TRAINING_BUCKET_FRAMES["cuda"])

    clips = [synthetic_speech(s, seed=i) for i, s in enumerate((1.1, 1.3, 2.0, 2.2, 3.0, 9.0))]
    batch = torch.zeros(len(clips), max(len(c) for c in clips))
    mask = torch.zeros_like(batch, dtype=torch.long)
    for row, clip in enumerate(clips):
        batch[row, : len(clip)], mask[row, : len(clip)] = torch.from_numpy(clip), 1
    frames = [model.config.output_frames(len(c)) for c in clips]
    assert len({f // TRAINING_BUCKET_FRAMES['cuda'] for f in frames[:4]}) < len(set(frames[:4]))  # some share a bucket
    with torch.no_grad():
        alone = model(batch, attention_mask=mask, output_hidden_states=True)
    calls = []
    hook = model.head.register_forward_hook(lambda module, args, kwargs_out: calls.append(args[0].shape[0]))
    together = model(batch, attention_mask=mask, output_hidden_states=True)
    hook.remove()
    assert len(calls) < len(set(frames[:5])) + 1  # fewer head calls than distinct window lengths (5 short + full)
    assert torch.allclose(together.window_mos, alone.window_mos, atol=1e-5, equal_nan=True)
    assert torch.equal(together.hidden_mask, alone.hidden_mask)
    for ours, reference in zip(together.hidden_states, alone.hidden_states, strict=True):
        assert torch.allclose(ours, reference, atol=1e-4)
    together.mos.sum().backward()  # the masked path trains
    assert all(p.grad is not None for p in model.head.parameters() if p.requires_grad)


def test_masked_head_batch_norm_counts_real_frames_only():
    """In training mode the head's BatchNorm statistics over a padded, masked batch are those of the real
    frames: the same running statistics as the sequences concatenated without padding."""
    from hf_sqa.models.head import MOSHead

    torch.manual_seed(0)
    head = MOSHead(6, 8, [2], 4, [16], 0.0, 50)
    reference = MOSHead(6, 8, [2], 4, [16], 0.0, 50)
    reference.load_state_dict(head.state_dict())
    long, short = torch.randn(1, 10, 6), torch.randn(1, 4, 6) + 3.0
    padded = torch.cat([long, torch.nn.functional.pad(short, (0, 0, 0, 6), value=100.0)])
    frame_mask = torch.arange(10)[None] < torch.tensor([10, 4])[:, None]
    head.train()(padded, frame_mask=frame_mask)
    reference.train()(torch.cat([long, short], dim=1))  # one sequence of all the real frames
    assert torch.allclose(head.input_norm.running_mean, reference.input_norm.running_mean, atol=1e-6)
    assert torch.allclose(head.input_norm.running_var, reference.input_norm.running_var, atol=1e-5)
