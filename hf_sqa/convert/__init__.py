"""Importers for released speech quality weights."""

from .distillmos import convert_distillmos, default_distillmos_weights
from .xls_r_sqa import ConversionError, convert_xls_r_sqa

__all__ = ["ConversionError", "convert_distillmos", "convert_xls_r_sqa", "default_distillmos_weights"]
