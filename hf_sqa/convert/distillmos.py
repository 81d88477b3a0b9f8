"""Import the released Distill-MOS v7 student (pip `distillmos`, MIT licence) as a ConvTransformer checkpoint."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

import torch

from ..models.configuration_conv_transformer_mos import ConvTransformerMOSConfig
from ..models.modeling_conv_transformer_mos import ConvTransformerForMOSRegression
from .xls_r_sqa import ConversionError, head_config_from_state, map_head_state

DISTILLMOS_WEIGHTS_NAME = "distill_mos_v7.pt"
DISTILLMOS_HEAD_HEADS = 8  # Distill-MOS v7: 8 attention heads (not recoverable from weight shapes)


def default_distillmos_weights() -> Path:
    """The weights file inside the installed `distillmos` wheel, found without importing it (its import
    needs torchaudio)."""
    spec = importlib.util.find_spec("distillmos")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the distillmos package is not installed; install it with "
            "`pip install --no-deps distillmos xls-r-sqa` or pass --weights PATH"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / DISTILLMOS_WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the installed distillmos package has no weights file")
    return path


def convert_distillmos(
    output_dir: str | os.PathLike | None, weights: str | os.PathLike | None = None
) -> ConvTransformerForMOSRegression:
    """Convert Distill-MOS weights (default: the installed wheel's) and save a checkpoint to output_dir, with
    the wheel's licence (MIT) as LICENSE when the weights are the wheel's."""
    from_wheel = weights is None
    weights = Path(weights) if weights is not None else default_distillmos_weights()
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such Distill-MOS weights file")
    checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
    source = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(source, dict) or "cnn.cnn.0.weight" not in source:
        raise ConversionError(f"{weights}: not a Distill-MOS checkpoint (no cnn.cnn.0.weight)")

    head_source = {k[len("transformer_pool_attn."):]: v for k, v in source.items() if k.startswith("transformer_pool_attn.")}
    # conv layers sit at even indices of Distill-MOS's Sequential (LeakyReLUs between them)
    conv_keys = sorted({int(k.split(".")[2]) for k in source if k.startswith("cnn.cnn.")})
    frontend = {f"cnn.cnn.{index}.": f"frontend.convs.{i}." for i, index in enumerate(conv_keys)}
    frontend["transformer_pool_attn.norm_input."] = "feature_norm."
    state = map_head_state(source, frontend, str(weights), head_prefix="transformer_pool_attn.")

    config = ConvTransformerMOSConfig(
        conv_channels=[source[f"cnn.cnn.{index}.weight"].shape[0] for index in conv_keys],
        **head_config_from_state(head_source, num_heads=DISTILLMOS_HEAD_HEADS),
        imported_from="distillmos",
    )
    model = ConvTransformerForMOSRegression(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ConversionError(f"{weights}: does not fit the Distill-MOS v7 architecture: {error}") from error
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
        licence = importlib.metadata.distribution("distillmos").read_text("LICENSE") if from_wheel else None
        if licence:  # the weights' licence travels with them
            lines = licence.splitlines()
            indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
            (Path(output_dir) / "LICENSE").write_text("\n".join(line[indent:] for line in lines).strip() + "\n")
    return model
