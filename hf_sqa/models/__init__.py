"""hf_sqa model families. Importing this registers them with transformers' Auto classes, and marks them
so that `save_pretrained` writes the flat remote-code files next to the weights (the feature extractor's
too: `preprocessor_config.json`, `AutoFeatureExtractor`)."""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

from .configuration_conv_transformer_mos import STUDENT_PRESETS, ConvTransformerMOSConfig, student_config
from .configuration_fast_mos import FastMOSConfig
from .configuration_mos import MOSConfig
from .configuration_xlsr_mos import XLSRMOSConfig
from .feature_extraction_mos import MOSFeatureExtractor
from .modeling_conv_transformer_mos import ConvTransformerForMOSRegression
from .modeling_fast_mos import FastMOSForMOSRegression
from .modeling_mos import MOSPreTrainedModel, MOSRegressionOutput
from .modeling_xlsr_mos import XLSRForMOSRegression

for _config_class, _model_class in (
    (XLSRMOSConfig, XLSRForMOSRegression),
    (ConvTransformerMOSConfig, ConvTransformerForMOSRegression),
    (FastMOSConfig, FastMOSForMOSRegression),
):
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    AutoModel.register(_config_class, _model_class, exist_ok=True)
    AutoFeatureExtractor.register(_config_class, MOSFeatureExtractor, exist_ok=True)
    _config_class.register_for_auto_class()
    _model_class.register_for_auto_class("AutoModel")
MOSFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

__all__ = [
    "STUDENT_PRESETS",
    "ConvTransformerForMOSRegression",
    "ConvTransformerMOSConfig",
    "FastMOSConfig",
    "FastMOSForMOSRegression",
    "MOSConfig",
    "MOSFeatureExtractor",
    "MOSPreTrainedModel",
    "MOSRegressionOutput",
    "XLSRForMOSRegression",
    "XLSRMOSConfig",
    "student_config",
]
