"""hf_sqa: self-supervised speech quality assessment (MOS prediction) on the Hugging Face stack.

    >>> import hf_sqa
    >>> hf_sqa.score(["a.wav", "b.flac"])          # Distill-MOS import by default
    array([3.91, 2.47], dtype=float32)
"""

from . import models  # registers the model classes with the Auto classes
from .audio import AudioError, load_audio
from .models import (
    ConvTransformerForMOSRegression,
    ConvTransformerMOSConfig,
    FastMOSConfig,
    FastMOSForMOSRegression,
    MOSFeatureExtractor,
    XLSRForMOSRegression,
    XLSRMOSConfig,
    student_config,
)
from .pipeline import SpeechQualityPipeline
from .scoring import DEFAULT_MODEL, iter_scores, load_model, score, score_dataset

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "AudioError",
    "ConvTransformerForMOSRegression",
    "ConvTransformerMOSConfig",
    "FastMOSConfig",
    "FastMOSForMOSRegression",
    "MOSFeatureExtractor",
    "SpeechQualityPipeline",
    "XLSRForMOSRegression",
    "XLSRMOSConfig",
    "__version__",
    "iter_scores",
    "load_audio",
    "load_model",
    "score",
    "score_dataset",
    "student_config",
]
