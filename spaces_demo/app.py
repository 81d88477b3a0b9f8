"""Speech quality (MOS) of uploaded or recorded audio, with hf_sqa models: a Gradio Space.

The models offered are listed in models.yaml next to this file (name: built-in name, checkpoint folder
relative to this file, or Hub id). Run locally with `make demo` or `python spaces_demo/app.py`
(HOST / PORT environment variables; default 127.0.0.1:7860).
"""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
import matplotlib
import numpy as np
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import hf_sqa  # noqa: E402
from hf_sqa.audio import AudioError, load_audio  # noqa: E402
from hf_sqa.scoring import QUALITY_BANDS, quality_band  # noqa: E402

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
# window hops offered (seconds between window starts at most); the first keeps the model's own rule
HOPS = ("model's rule", "1", "2", "3.84", "7.68")


def load_settings(path: Path = HERE / "models.yaml") -> dict:
    settings = yaml.safe_load(path.read_text())
    models = settings.get("models") or {}
    if not models:
        raise ValueError(f"{path}: lists no models")
    if settings.get("default", next(iter(models))) not in models:
        raise ValueError(f"{path}: default model {settings['default']!r} is not in its models")
    return settings


SETTINGS = load_settings()
MODELS: dict[str, str] = SETTINGS["models"]
DEFAULT_MODEL = SETTINGS.get("default", next(iter(MODELS)))
MAX_SECONDS = float(SETTINGS.get("max_seconds", 60))
MAX_MEGABYTES = float(SETTINGS.get("max_megabytes", 25))
_loaded: dict = {}  # model name -> loaded model


def model_for(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if name not in _loaded:
        source = MODELS[name]
        local = HERE / source
        _loaded[name] = hf_sqa.load_model(str(local) if local.exists() else source)
    return _loaded[name]


def timeline_figure(segments, duration: float):
    """Per-window MOS over the clip: a bar per model window (7.68 s, overlapping on long clips)."""
    figure, axis = plt.subplots(figsize=(8, 2.6))
    for segment in segments:
        axis.plot([segment.start, segment.end], [segment.mos, segment.mos], lw=4, alpha=0.7, color="tab:blue")
    if len(segments) > 1:
        centres = [(s.start + s.end) / 2 for s in segments]
        axis.plot(centres, [s.mos for s in segments], "o--", color="tab:blue", lw=1)
    for lower, name in QUALITY_BANDS[:-1]:
        axis.axhline(lower, color="grey", lw=0.5, ls=":")
    axis.set(xlim=(0, max(duration, 0.1)), ylim=(1, 5), xlabel="time (s)", ylabel="MOS",
             title="Quality per model window")
    figure.tight_layout()
    return figure


def waveform_figure(samples: np.ndarray, rate: int):
    figure, axis = plt.subplots(figsize=(8, 2.0))
    step = max(1, len(samples) // 20000)  # plot at most ~20k points
    time = np.arange(0, len(samples), step) / rate
    axis.plot(time, samples[::step], lw=0.5, color="tab:gray")
    axis.set(xlim=(0, len(samples) / rate), xlabel="time (s)", title="Waveform (16 kHz mono, as scored)")
    axis.set_yticks([])
    figure.tight_layout()
    return figure


def score_clip(path: str | None, model_name: str, hop: str = HOPS[0]):
    """(Markdown summary, timeline figure, waveform figure) for the clip at `path`, windows at most `hop`
    seconds apart (one of HOPS). Problems come back as a message in the summary (and no figures), never as
    an exception."""
    if not path:
        return "Upload or record a clip first.", None, None
    try:
        megabytes = os.path.getsize(path) / 1e6
        if megabytes > MAX_MEGABYTES:
            return f"⚠️ The file is {megabytes:.1f} MB; this demo takes at most {MAX_MEGABYTES:g} MB.", None, None
        audio = load_audio(path)
        duration = len(audio.samples) / audio.sampling_rate
        if duration > MAX_SECONDS:
            return (f"⚠️ The clip is {duration:.1f} s long; this demo scores at most {MAX_SECONDS:g} s. "
                    "Use `hf-sqa score` for long recordings."), None, None
        model = model_for(model_name)
        window_hop = None if hop == HOPS[0] else float(hop)
        result = next(hf_sqa.iter_scores([audio.samples], model, sampling_rate=audio.sampling_rate,
                                         window_hop=window_hop))
        if result.error:
            return f"⚠️ {result.error}", None, None
    except AudioError as error:
        return f"⚠️ Cannot read this audio: {error}", None, None
    except Exception as error:  # a demo shows a message, never a stack trace
        return f"⚠️ Scoring failed: {type(error).__name__}: {error}", None, None
    windows = [s.mos for s in result.segments]
    summary = (f"## MOS {result.mos:.2f} — {quality_band(result.mos)}\n\n"
               f"{duration:.1f} s, {len(windows)} window(s) (MOS {min(windows):.2f}–{max(windows):.2f}, "
               f"10th percentile {result.p10_mos:.2f}), model `{model_name}`")
    if result.is_silent:
        summary += "\n\n⚠️ The clip is digital silence; its score means little."
    return summary, timeline_figure(result.segments, duration), waveform_figure(audio.samples, audio.sampling_rate)


def build_demo() -> gr.Blocks:
    examples = sorted(str(p) for p in EXAMPLES.glob("*") if p.suffix in (".wav", ".flac", ".mp3", ".ogg"))
    with gr.Blocks(title="hf_sqa: speech quality (MOS)") as demo:
        gr.Markdown(
            "# Speech quality (MOS) with hf_sqa\n"
            "Upload or record speech (any format, sampling rate and channel count; at most "
            f"{MAX_SECONDS:g} s and {MAX_MEGABYTES:g} MB). The model predicts the mean opinion score "
            "(1 = bad … 5 = excellent) listeners would give it.")
        with gr.Row():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech", elem_id="audio-in")
            with gr.Column():
                model = gr.Dropdown(list(MODELS), value=DEFAULT_MODEL, label="Model", elem_id="model")
                hop = gr.Dropdown(list(HOPS), value=HOPS[0], label="Window hop (s)", elem_id="hop")
                button = gr.Button("Score", variant="primary", elem_id="score")
        summary = gr.Markdown(elem_id="summary")
        timeline = gr.Plot(label="Quality timeline", elem_id="timeline")
        waveform = gr.Plot(label="Waveform", elem_id="waveform")
        button.click(score_clip, inputs=[audio, model, hop], outputs=[summary, timeline, waveform])
        if examples:
            gr.Examples(examples=[[path, DEFAULT_MODEL] for path in examples], inputs=[audio, model])
    return demo


if __name__ == "__main__":
    build_demo().launch(server_name=os.environ.get("HOST", "127.0.0.1"),
                        server_port=int(os.environ.get("PORT", "7860")), show_error=False)
