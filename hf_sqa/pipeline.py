"""A transformers `pipeline` task for the hf_sqa models: "speech-quality-assessment".

    >>> import hf_sqa  # registers the task
    >>> from transformers import pipeline
    >>> sqa = pipeline("speech-quality-assessment", model=hf_sqa.load_model("distillmos"))
    >>> sqa("clip.wav")
    {'mos': 3.9, 'silent': False, 'segments': [{'start': 0.0, 'end': 3.2, 'mos': 3.9}]}

Inputs are what `hf_sqa.audio.load_audio` takes: a path, or an array with `sampling_rate=`.
"""

from __future__ import annotations

import dataclasses

import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .audio import load_audio
from .scoring import window_segments

TASK = "speech-quality-assessment"


class SpeechQualityPipeline(Pipeline):
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, sampling_rate=None, channel=None, **kwargs):
        preprocess = {}
        if sampling_rate is not None:
            preprocess["sampling_rate"] = sampling_rate
        if channel is not None:
            preprocess["channel"] = channel
        return preprocess, {}, {}

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

    def _forward(self, model_inputs):
        output = self.model(input_values=model_inputs["input_values"])
        return {"output": output, "silent": model_inputs["silent"], "num_samples": model_inputs["num_samples"]}

    def postprocess(self, model_outputs):
        output = model_outputs["output"]
        (segments,) = window_segments(output, [model_outputs["num_samples"]], self.model.config)
        return {"mos": float(output.mos[0]), "silent": bool(model_outputs["silent"]),
                "segments": [dataclasses.asdict(segment) for segment in segments]}


PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=SpeechQualityPipeline, pt_model=AutoModel, type="audio")
