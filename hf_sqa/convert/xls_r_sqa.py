"""Import the released XLS-R-SQA heads (lcn-kul/xls-r-analysis-sqa, pip `xls-r-sqa`) onto a wav2vec 2.0 backbone.

The released head files are plain state dicts named ``model_{300m|1b|2b}_{layN|fusion}_{full|subset}.pt``.
Single-layer heads (``SingleLayerModel``) read ``hidden_states[N]``; fusion heads (``FusionModel``) read
two layers: 5 and 21 of XLS-R 300M, 10 and 41 of XLS-R 1B and 2B (the layers the authors truncated to).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from ..models.head import sinusoidal_position_encoding
from ..models.modeling_xlsr_mos import XLSRForMOSRegression

# XLS-R-SQA module names -> hf_sqa MOSHead names (Distill-MOS reuses the same head and names)
_HEAD_RENAMES = (
    ("transformer.norm.", "head.input_norm."),
    ("transformer.linear_proj.", "head.projection."),
    ("transformer.transformer_encoder.layers.", "head.encoder.layers."),
    ("norm_trans.", "head.output_norm."),
    ("pool.linear1.", "head.pooling.attention_hidden."),
    ("pool.linear2.", "head.pooling.attention_score."),
    ("pool.linear3.", "head.pooling.output."),
)
_POSITION_KEY = "transformer.position_encoding.pe"

# the two layers every released fusion head reads, by backbone size
FUSION_LAYERS = {"300m": [5, 21], "1b": [10, 41], "2b": [10, 41]}
BACKBONE_IDS = {
    "300m": "facebook/wav2vec2-xls-r-300m",
    "1b": "facebook/wav2vec2-xls-r-1b",
    "2b": "facebook/wav2vec2-xls-r-2b",
}
_VARIANT_NAME = re.compile(r"model_(300m|1b|2b)_(lay(\d+)|fusion)_(full|subset)")


class ConversionError(ValueError):
    """Weights that do not fit the architecture they are imported into."""


def map_head_state(
    source: dict[str, torch.Tensor], frontend_renames: dict[str, str], origin: str, head_prefix: str = ""
) -> dict:
    """Rename an XLS-R-SQA-style state dict to hf_sqa names.

    head_prefix is where the XLS-R-SQA head sits in the source ("" for XLS-R-SQA, "transformer_pool_attn."
    for Distill-MOS); frontend_renames maps the source's other prefixes (input BatchNorms, fusion mix, conv
    layers) to hf_sqa prefixes. The position table is checked against ours and dropped (we compute it).
    Any key left unmapped is an error: silently ignoring weights would change scores.
    """
    renames = tuple(frontend_renames.items()) + tuple((head_prefix + old, new) for old, new in _HEAD_RENAMES)
    mapped, unmapped = {}, []
    for key, value in source.items():
        if key == head_prefix + _POSITION_KEY:
            _check_position_table(value, origin)
            continue
        for old, new in renames:
            if key.startswith(old):
                mapped[new + key[len(old):]] = value
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise ConversionError(f"{origin}: keys with no hf_sqa counterpart: {unmapped[:8]}")
    return mapped


def _check_position_table(table: torch.Tensor, origin: str) -> None:
    _, length, dim = table.shape
    ours = sinusoidal_position_encoding(length, dim, scale_length=length)
    # 1e-4: float32 sin of large arguments rounds differently across libms (seen: 1.5e-5)
    if not torch.allclose(table[0].float(), ours, atol=1e-4):
        raise ConversionError(f"{origin}: its positional encoding differs from the XLS-R-SQA formula")


def head_config_from_state(source: dict[str, torch.Tensor], num_heads: int) -> dict:
    """Head sizes read from the weights' shapes (the head count is not visible in weights)."""
    projection = source["transformer.linear_proj.weight"]  # (hidden, input)
    layer_ids = {int(k.split(".")[3]) for k in source if k.startswith("transformer.transformer_encoder.layers.")}
    return dict(
        head_hidden_size=projection.shape[0],
        head_num_layers=len(layer_ids),
        head_num_heads=num_heads,
        head_ffn_size=source["transformer.transformer_encoder.layers.0.linear1.weight"].shape[0],
        position_scale_length=source[_POSITION_KEY].shape[1],
    )


def parse_variant(head_weights: str | os.PathLike) -> tuple[str, list[int] | None]:
    """('300m'|'1b'|'2b', layers) from a released file name; layers is None when the name does not say."""
    match = _VARIANT_NAME.search(Path(head_weights).name)
    if not match:
        raise ConversionError(
            f"{head_weights}: not a released XLS-R-SQA head name (model_<300m|1b|2b>_<layN|fusion>_<full|subset>.pt);"
            " pass layers explicitly"
        )
    size = match.group(1)
    layers = FUSION_LAYERS[size] if match.group(2) == "fusion" else [int(match.group(3))]
    return size, layers


def convert_xls_r_sqa(
    head_weights: str | os.PathLike,
    output_dir: str | os.PathLike | None,
    backbone: str | os.PathLike | None = None,
    layers: list[int] | None = None,
) -> XLSRForMOSRegression:
    """Build an `XLSRForMOSRegression` from a released head file and a wav2vec 2.0 backbone, and save it.

    backbone: Hub id or folder of the XLS-R model the head was trained on (default: the facebook XLS-R of
    the size in the file name). layers: hidden layers the head reads (default: from the file name).
    """
    head_weights = Path(head_weights)
    if not head_weights.is_file():
        raise FileNotFoundError(f"{head_weights}: no such head weights file")
    if layers is None or backbone is None:
        size, named_layers = parse_variant(head_weights)
        layers = layers or named_layers
        backbone = backbone or BACKBONE_IDS[size]
    source = torch.load(head_weights, map_location="cpu", weights_only=True)
    is_fusion = "lin_infusion.weight" in source
    if is_fusion:
        count = len({k.split(".")[1] for k in source if k.startswith("norm_inputs.")})
        if len(layers) != count:
            raise ConversionError(f"{head_weights}: fusion head mixes {count} layers, got layers={layers}")
        frontend = {"norm_inputs.": "layer_fusion.layer_norms.", "lin_infusion.": "layer_fusion.mix."}
    else:
        if len(layers) != 1:
            raise ConversionError(f"{head_weights}: single-layer head, got layers={layers}")
        frontend = {"norm_input.": "layer_fusion.layer_norms.0."}
    model = XLSRForMOSRegression.from_backbone(
        backbone,
        feature_layers=list(layers),
        layer_fusion="fusion" if is_fusion else "single",
        **head_config_from_state(source, num_heads=4),
        imported_from="xls-r-sqa",
    )
    input_size = source["transformer.linear_proj.weight"].shape[1]
    if input_size != model.config.wav2vec2_config.hidden_size:
        raise ConversionError(
            f"{head_weights}: head reads {input_size}-dim features, backbone {backbone} has "
            f"{model.config.wav2vec2_config.hidden_size}"
        )
    head_state = map_head_state(source, frontend, str(head_weights))
    backbone_state = {k: v for k, v in model.state_dict().items() if k.startswith("wav2vec2.")}
    model.load_state_dict({**backbone_state, **head_state}, strict=True)
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
    return model
