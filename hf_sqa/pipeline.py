"""A transformers `pipeline` task for the hf_sqa models: "speech-quality-assessment".

    >>> import hf_sqa  # registers the task
    >>> from transformers import pipeline
    >>> sqa = pipeline("speech-quality-assessment", model=hf_sqa.load_model("distillmos"))
    >>> sqa("clip.wav")
    {'mos': 3.9, 'lowest_mos': 3.9, 'p10_mos': 3.9, 'silent': False, 'segments': [{'start': 0.0, 'end': 3.2, 'mos': 3.9}]}
    >>> sqa("meeting.flac", window_hop=7.68, below=3.0)  # fewer windows; + 'share_below'
    >>> sqa(dataset["audio"], batch_size=8)  # rows of a datasets Audio column; a list of results

Inputs are what transformers' audio pipelines take: a path, the bytes of an encoded file, an array (with
`sampling_rate=`), a dict with `array` (or `raw`) and `sampling_rate` (a decoded `datasets` Audio row) or
with `bytes` / `path` (an undecoded one, `Audio(decode=False)`), a list or generator of these, a
`KeyDataset`. Everything is read by `hf_sqa.audio` and made into model input by the model's feature
extractor (`MOSFeatureExtractor`), which pads batches (`batch_size=`). Outputs are plain JSON types.
"""

from __future__ import annotations

import dataclasses

from transformers import AutoModel, BatchFeature, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .audio import load_audio
from .models import MOSFeatureExtractor, MOSRegressionOutput
from .scoring import summarize_windows, window_hop_samples, window_segments

TASK = "speech-quality-assessment"


class SpeechQualityPipeline(Pipeline):
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False  # every hf_sqa model takes the same one: made from its config below
    _load_tokenizer = False

    def __init__(self, model, *args, feature_extractor=None, **kwargs):
        feature_extractor = feature_extractor or MOSFeatureExtractor.from_model_config(model.config)
        super().__init__(model, *args, feature_extractor=feature_extractor, **kwargs)

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
        rate = self.feature_extractor.sampling_rate
        # decoded, checked, mixed and resampled by hf_sqa.audio (the feature extractor's own conversion, so
        # not run again here); the feature extractor's padding makes the model input and its mask, which
        # the pipeline's batching pads further
        samples = load_audio(inputs, sampling_rate=sampling_rate, channel=channel, target_sampling_rate=rate).samples
        features = self.feature_extractor.pad(BatchFeature({"input_values": [samples]}), return_tensors="pt")
        return {"input_values": features["input_values"], "attention_mask": features["attention_mask"],
                "silent": ~features["input_values"].any(dim=-1)}

    def _forward(self, model_inputs, window_max_hop=None):
        # (batch, time) padded clips; every output below has the batch first, so the pipeline's unbatching
        # hands postprocess one clip's rows
        mask = model_inputs["attention_mask"]
        output = self.model(input_values=model_inputs["input_values"], attention_mask=mask,
                            window_max_hop=window_max_hop)
        return {"mos": output.mos, "window_mos": output.window_mos, "window_mask": output.window_mask,
                "window_starts": output.window_starts, "num_samples": mask.sum(dim=-1),
                "silent": model_inputs["silent"]}

    def postprocess(self, model_outputs, below=None):
        windows = MOSRegressionOutput(window_mos=model_outputs["window_mos"], window_mask=model_outputs["window_mask"],
                                      window_starts=model_outputs["window_starts"])
        (segments,) = window_segments(windows, [int(model_outputs["num_samples"][0])], self.model.config)
        lowest, p10, share = summarize_windows(segments, below)
        result = {"mos": float(model_outputs["mos"][0]), "lowest_mos": float(lowest), "p10_mos": float(p10),
                  "silent": bool(model_outputs["silent"][0]),
                  "segments": [dataclasses.asdict(segment) for segment in segments]}
        if below is not None:
            result["share_below"] = float(share)
        return result


PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=SpeechQualityPipeline, pt_model=AutoModel, type="audio")
