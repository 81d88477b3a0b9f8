"""A transformers `pipeline` task for the hf_sqa models: "speech-quality-assessment".

    >>> import hf_sqa  # registers the task
    >>> from transformers import pipeline
    >>> sqa = pipeline("speech-quality-assessment", model=hf_sqa.load_model("distillmos"))
    >>> sqa("clip.wav")
    {'mos': 3.9, 'lowest_mos': 3.9, 'p10_mos': 3.9, 'silent': False, 'segments': [{'start': 0.0, 'end': 3.2, 'mos': 3.9}]}
    >>> sqa("meeting.flac", window_hop=7.68, below=3.0)  # fewer windows; + 'share_below'

Inputs are what `hf_sqa.audio.load_audio` takes: a path, or an array with `sampling_rate=`.
"""

from __future__ import annotations

import dataclasses

import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .audio import load_audio
from .scoring import summarize_windows, window_hop_samples, window_segments

TASK = "speech-quality-assessment"


class SpeechQualityPipeline(Pipeline):
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, sampling_rate=None, channel=None, window_hop=None, below=None, **kwargs):
        preprocess, forward, postprocess = {}, {}, {}
        if sampling_rate is not None:
            preprocess["sampling_rate"] = sampling_rate
        if channel is not None:
            preprocess["channel"] = channel
        if window_hop is not None:
            forward["window_max_hop"] = window_hop_samples(window_hop, self.model.config)
        if below is not None:
            postprocess["below"] = below
        return preprocess, forward, postprocess

    def preprocess(self, inputs, sampling_rate=None, channel=None):
        audio = load_audio(
            inputs, sampling_rate=sampling_rate, channel=channel,
            target_sampling_rate=self.model.config.sampling_rate,
        )
        return {
            "input_values": torch.from_numpy(audio.samples)[None],
            "silent": audio.is_silent,
            "num_samples": len(audio.samples),
        }

    def _forward(self, model_inputs, window_max_hop=None):
        output = self.model(input_values=model_inputs["input_values"], window_max_hop=window_max_hop)
        return {"output": output, "silent": model_inputs["silent"], "num_samples": model_inputs["num_samples"]}

    def postprocess(self, model_outputs, below=None):
        output = model_outputs["output"]
        (segments,) = window_segments(output, [model_outputs["num_samples"]], self.model.config)
        lowest, p10, share = summarize_windows(segments, below)
        result = {"mos": float(output.mos[0]), "lowest_mos": lowest, "p10_mos": p10,
                  "silent": bool(model_outputs["silent"]),
                  "segments": [dataclasses.asdict(segment) for segment in segments]}
        if below is not None:
            result["share_below"] = share
        return result


PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=SpeechQualityPipeline, pt_model=AutoModel, type="audio")
