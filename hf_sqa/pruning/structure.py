"""What can be pruned in an hf_sqa model, and pruning it.

A model's prunable structure is a set of named **unit groups**:

    heads        attention heads of one transformer layer    ("head.encoder.layers.2.heads")
    ffn          feed-forward units of one transformer layer ("wav2vec2.encoder.layers.5.ffn")
    attention    a whole attention block (one unit)          ("wav2vec2.encoder.layers.5.attention")
    feed_forward a whole feed-forward block (one unit)       ("head.encoder.layers.0.feed_forward")
    conv         output channels of one conv layer           ("frontend.convs.3",
                                                              "wav2vec2.feature_extractor.conv_layers.0")

(a group is named by its layer's module path),

for the teacher's wav2vec 2.0 backbone (conv feature encoder, transformer layers), the students' conv stack,
and the MOS head both share. `gated(model, gates)` multiplies each unit's output by a gate (1: kept, 0:
removed) through forward hooks, without changing the model: importance scores are gradients with respect to
these gates, and with 0/1 gates the model computes exactly what the pruned model computes.
`prune_model(model, keep)` builds the smaller model: its config holds the kept per-layer structure, and its
weights are the kept slices, so `from_pretrained` rebuilds it and loads it strictly.

Where a unit's removal is more than zeroing its output, the gate does the same: a LayerNorm over conv
channels (XLS-R's feature encoder, the feature projection) computes its statistics over the kept channels
only, and the students' last conv layer is gated after the two BatchNorms that follow it.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..models import ConvTransformerForMOSRegression, MOSPreTrainedModel, XLSRForMOSRegression

BLOCK_KINDS = {"heads": "attention", "ffn": "feed_forward"}


@dataclass(frozen=True)
class UnitGroup:
    name: str
    kind: str  # heads | ffn | attention | feed_forward | conv
    size: int  # units in the model now (1 for a block)
    block: str | None = None  # for heads / ffn: the block group whose removal removes these units


class PruningError(ValueError):
    """A pruning plan or target that cannot be carried out; the message says which and why."""


def _gate_rows(x: torch.Tensor, gate: torch.Tensor, unit_width: int) -> torch.Tensor:
    """x: (..., units * unit_width) -> each unit's `unit_width` features times its gate."""
    shape = x.shape
    return (x.view(*shape[:-1], -1, unit_width) * gate[:, None].to(x.dtype)).view(shape)


def _masked_layer_norm(x: torch.Tensor, norm: nn.LayerNorm, gate: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last dim with statistics weighted by `gate`: with a 0/1 gate, the statistics of
    the kept channels only, i.e. what the pruned LayerNorm computes. x: (..., C), gate: (C,)"""
    weight = gate.to(x.dtype)
    total = weight.sum()
    mean = (x * weight).sum(-1, keepdim=True) / total
    variance = (((x - mean) ** 2) * weight).sum(-1, keepdim=True) / total
    return (x - mean) / torch.sqrt(variance + norm.eps) * norm.weight + norm.bias


class _Hooks:
    """Collects hook handles; `remove()` takes them all off."""

    def __init__(self):
        self.handles = []

    def output(self, module: nn.Module, fn):
        self.handles.append(module.register_forward_hook(lambda m, args, out: fn(out, args)))

    def input(self, module: nn.Module, fn):
        self.handles.append(module.register_forward_pre_hook(lambda m, args: (fn(args[0]), *args[1:])))

    def remove(self):
        for handle in self.handles:
            handle.remove()


class StructureFamily:
    """The prunable structure of one model family (see the module docstring)."""

    def __init__(self, model: MOSPreTrainedModel):
        self.model = model
        self.config = model.config

    # -- structure -----------------------------------------------------------------------------------
    def groups(self) -> list[UnitGroup]:
        return self._conv_groups() + self._layer_groups(*self._backbone_layers()) + self._layer_groups(
            "head.encoder.layers", self.config.head_heads_per_layer, self.config.head_ffn_sizes_per_layer)

    def _backbone_layers(self) -> tuple[str, list[int], list[int]]:
        return "", [], []

    def _conv_groups(self) -> list[UnitGroup]:
        return [UnitGroup(name, "conv", size) for name, size in zip(self.conv_names(), self.conv_sizes())]

    @staticmethod
    def _layer_groups(prefix: str, heads: list[int], ffn_sizes: list[int]) -> list[UnitGroup]:
        groups = []
        for index, (num_heads, ffn) in enumerate(zip(heads, ffn_sizes)):
            base = f"{prefix}.{index}"
            if num_heads:
                groups += [UnitGroup(f"{base}.attention", "attention", 1),
                           UnitGroup(f"{base}.heads", "heads", num_heads, block=f"{base}.attention")]
            if ffn:
                groups += [UnitGroup(f"{base}.feed_forward", "feed_forward", 1),
                           UnitGroup(f"{base}.ffn", "ffn", ffn, block=f"{base}.feed_forward")]
        return groups

    def sizes(self) -> dict[str, int]:
        return {group.name: group.size for group in self.groups()}

    def conv_names(self) -> list[str]:
        raise NotImplementedError

    def conv_sizes(self) -> list[int]:
        raise NotImplementedError

    # -- parameter counts ----------------------------------------------------------------------------
    def dependent_parameters(self, sizes: Mapping[str, torch.Tensor | float]):
        """Parameters that depend on the prunable structure, as a polynomial in the group sizes (blocks are
        0/1). Exact for integer sizes; with expected sizes (sums of keep probabilities) it is the expected
        count, differentiable, which the L0 method penalises. A group missing from `sizes` counts 0."""
        head = self.config
        total = self._conv_parameters(sizes)
        total = total + self._layer_parameters(sizes, *self._backbone_layer_shape())
        return total + self._layer_parameters(
            sizes, "head.encoder.layers", head.head_num_layers, head.head_hidden_size,
            head.head_attention_head_size, pre_norm=False)

    def _backbone_layer_shape(self):
        return "", 0, 0, 0, False

    @staticmethod
    def _layer_parameters(sizes, prefix: str, num_layers: int, hidden: int, head_dim: int, pre_norm: bool):
        total = 0
        # q, k, v (weights and biases) and out_proj's weight per head; out_proj's bias per block
        per_head = 4 * head_dim * hidden + 3 * head_dim
        # a pre-norm block owns its LayerNorm (2 * hidden); post-norm LayerNorms stay
        block_extra = hidden + (2 * hidden if pre_norm else 0)
        for index in range(num_layers):
            base = f"{prefix}.{index}"
            attention = sizes.get(f"{base}.attention", 0)
            total = total + attention * (sizes.get(f"{base}.heads", 0) * per_head + block_extra)
            feed_forward = sizes.get(f"{base}.feed_forward", 0)
            total = total + feed_forward * (sizes.get(f"{base}.ffn", 0) * (2 * hidden + 1) + block_extra)
        return total

    def _conv_parameters(self, sizes):
        raise NotImplementedError

    def parameter_count(self, sizes: Mapping[str, torch.Tensor | float]):
        """Parameters of the model with structure `sizes` (same groups as `self.sizes()`)."""
        return self._constant_parameters + self.dependent_parameters(sizes)

    @property
    def _constant_parameters(self) -> int:
        actual = sum(p.numel() for p in self.model.parameters())
        return actual - int(self.dependent_parameters(self.sizes()))

    def minimum_parameter_count(self) -> int:
        """Parameters left when every block is removed and every conv layer keeps one channel."""
        smallest = {group.name: 1 for group in self.groups() if group.kind == "conv"}
        return int(self.parameter_count(smallest))

    # -- gates ---------------------------------------------------------------------------------------
    def install_gates(self, gates: Mapping[str, torch.Tensor], hooks: _Hooks) -> None:
        for name, gate in gates.items():
            kind, module = self._gate_target(name)
            if kind == "conv":
                self._gate_conv(name, gate, hooks)
            elif kind in ("attention", "feed_forward"):
                hooks.output(module, lambda out, args, g=gate: out * g.to(out.dtype))
            else:  # heads / ffn: the input of the block's output projection, per unit
                width = self._head_dim(name) if kind == "heads" else 1
                hooks.input(module, lambda x, g=gate, w=width: _gate_rows(x, g, w))

    def _gate_target(self, name: str) -> tuple[str, nn.Module | None]:
        group = {g.name: g for g in self.groups()}.get(name)
        if group is None:
            raise PruningError(f"{type(self.model).__name__} has no prunable group {name!r}")
        if group.kind == "conv":
            return "conv", None
        layer = self.model.get_submodule(name.rsplit(".", 1)[0])
        return group.kind, self._layer_module(layer, group.kind)

    @staticmethod
    def _layer_module(layer: nn.Module, kind: str) -> nn.Module:
        """The module whose output (blocks) or input (heads / ffn units) a gate multiplies."""
        if hasattr(layer, "self_attn"):  # MOS head layer
            return {"attention": layer.self_attn, "heads": layer.self_attn.out_proj,
                    "feed_forward": layer.linear2, "ffn": layer.linear2}[kind]
        return {"attention": layer.attention, "heads": layer.attention.out_proj,
                "feed_forward": layer.feed_forward, "ffn": layer.feed_forward.output_dense}[kind]

    def _head_dim(self, name: str) -> int:
        if name.startswith("head."):
            return self.config.head_attention_head_size
        return self.config.backbone_attention_head_size

    def _gate_conv(self, name: str, gate: torch.Tensor, hooks: _Hooks) -> None:
        raise NotImplementedError

    # -- pruning -------------------------------------------------------------------------------------
    def pruned_config(self, kept: Mapping[str, int]):
        """A copy of the config with the structure `kept` (group -> units kept, 0 for a removed block)."""
        config = copy.deepcopy(self.config)
        for prefix, heads_field, ffn_field, layers in self._layer_fields(config):
            heads = [kept.get(f"{prefix}.{i}.heads", 0) * kept.get(f"{prefix}.{i}.attention", 0) for i in layers]
            ffn = [kept.get(f"{prefix}.{i}.ffn", 0) * kept.get(f"{prefix}.{i}.feed_forward", 0) for i in layers]
            setattr(config, heads_field, heads)
            setattr(config, ffn_field, ffn)
        self._set_conv_sizes(config, [kept[name] for name in self.conv_names()])
        return type(config).from_dict(config.to_dict())  # re-validated

    def _layer_fields(self, config):
        return [("head.encoder.layers", "head_layer_num_heads", "head_layer_ffn_sizes",
                 range(config.head_num_layers))]

    def _set_conv_sizes(self, config, sizes: list[int]) -> None:
        raise NotImplementedError

    def slices(self, keep: Mapping[str, torch.Tensor]) -> dict[str, list[tuple[int, torch.Tensor]]]:
        """State-dict key -> [(dim, kept indices)] selecting the kept units' weights."""
        ops: dict[str, list[tuple[int, torch.Tensor]]] = {}

        def take(key: str, dim: int, index: torch.Tensor):
            ops.setdefault(key, []).append((dim, index))

        for group in self.groups():
            index = torch.nonzero(keep[group.name]).flatten()
            if group.kind == "conv":
                self._slice_conv(group.name, index, take)
            elif group.kind in ("heads", "ffn"):
                self._slice_units(group, index, take)
        return ops

    def _slice_units(self, group: UnitGroup, index: torch.Tensor, take) -> None:
        layer = group.name.rsplit(".", 1)[0]
        if group.kind == "heads":
            head_dim = self._head_dim(group.name)
            rows = (index[:, None] * head_dim + torch.arange(head_dim)).flatten()
            if layer.startswith("head."):  # packed [q; k; v] rows of nn.MultiheadAttention
                width = group.size * head_dim
                packed = torch.cat([rows, rows + width, rows + 2 * width])
                take(f"{layer}.self_attn.in_proj_weight", 0, packed)
                take(f"{layer}.self_attn.in_proj_bias", 0, packed)
                take(f"{layer}.self_attn.out_proj.weight", 1, rows)
            else:
                for projection in ("q_proj", "k_proj", "v_proj"):
                    take(f"{layer}.attention.{projection}.weight", 0, rows)
                    take(f"{layer}.attention.{projection}.bias", 0, rows)
                take(f"{layer}.attention.out_proj.weight", 1, rows)
        else:
            first, second = (("linear1", "linear2") if layer.startswith("head.")
                             else ("feed_forward.intermediate_dense", "feed_forward.output_dense"))
            take(f"{layer}.{first}.weight", 0, index)
            take(f"{layer}.{first}.bias", 0, index)
            take(f"{layer}.{second}.weight", 1, index)

    def _slice_conv(self, name: str, index: torch.Tensor, take) -> None:
        raise NotImplementedError


class StudentStructure(StructureFamily):
    """ConvTransformer students: conv channels per layer, and the MOS head."""

    model: ConvTransformerForMOSRegression

    def conv_names(self) -> list[str]:
        return [f"frontend.convs.{i}" for i in range(len(self.config.conv_channels))]

    def conv_sizes(self) -> list[int]:
        return list(self.config.conv_channels)

    def _conv_parameters(self, sizes):
        config = self.config
        kernel_area = config.conv_kernel_size**2
        total, previous = 0, 2  # the first layer reads the real and imaginary part
        for name in self.conv_names():
            channels = sizes.get(name, 0)
            total = total + kernel_area * previous * channels + channels
            previous = channels
        # the last layer's channels x frequency bins are features: feature_norm and the head's input_norm
        # (weight, bias each) and a column of the head's projection
        return total + previous * config.conv_frequency_bins * (4 + config.head_hidden_size)

    def _gate_conv(self, name: str, gate: torch.Tensor, hooks: _Hooks) -> None:
        index = self.conv_names().index(name)
        if index < len(self.conv_names()) - 1:
            # before the LeakyReLU, which commutes with a non-negative gate
            hooks.output(self.model.frontend.convs[index], lambda out, args: out * gate.to(out.dtype)[:, None, None])
        else:
            # (N, L, C * F) channel-major features, after feature_norm and input_norm
            bins = self.config.conv_frequency_bins
            hooks.input(self.model.head.projection, lambda x: _gate_rows(x, gate, bins))

    def _set_conv_sizes(self, config, sizes: list[int]) -> None:
        config.conv_channels = sizes

    def _slice_conv(self, name: str, index: torch.Tensor, take) -> None:
        position = self.conv_names().index(name)
        take(f"{name}.weight", 0, index)
        take(f"{name}.bias", 0, index)
        if position < len(self.conv_names()) - 1:
            take(f"frontend.convs.{position + 1}.weight", 1, index)
            return
        bins = self.config.conv_frequency_bins
        features = (index[:, None] * bins + torch.arange(bins)).flatten()
        for norm in ("feature_norm", "head.input_norm"):
            for key in ("weight", "bias", "running_mean", "running_var"):
                take(f"{norm}.{key}", 0, features)
        take("head.projection.weight", 1, features)


class TeacherStructure(StructureFamily):
    """XLS-R teachers: conv feature-encoder channels, heads / FFN units / blocks of each backbone layer, and
    the MOS head."""

    model: XLSRForMOSRegression

    def _backbone_layers(self):
        return ("wav2vec2.encoder.layers", self.config.backbone_heads_per_layer,
                self.config.backbone_ffn_sizes_per_layer)

    def _backbone_layer_shape(self):
        backbone = self.config.wav2vec2_config
        return ("wav2vec2.encoder.layers", self.config.num_backbone_layers_built, backbone.hidden_size,
                self.config.backbone_attention_head_size, backbone.do_stable_layer_norm)

    def _layer_fields(self, config):
        return super()._layer_fields(config) + [
            ("wav2vec2.encoder.layers", "backbone_layer_num_heads", "backbone_layer_ffn_sizes",
             range(config.num_backbone_layers_built))]

    def conv_names(self) -> list[str]:
        count = len(self.config.wav2vec2_config.conv_dim)
        return [f"wav2vec2.feature_extractor.conv_layers.{i}" for i in range(count)]

    def conv_sizes(self) -> list[int]:
        return list(self.config.wav2vec2_config.conv_dim)

    def _conv_norm_channels(self, position: int) -> bool:
        """Whether conv layer `position` has a per-channel norm (LayerNorm or GroupNorm: weight + bias)."""
        return self.config.wav2vec2_config.feat_extract_norm == "layer" or position == 0

    def _conv_parameters(self, sizes):
        backbone = self.config.wav2vec2_config
        total, previous = 0, 1
        for position, name in enumerate(self.conv_names()):
            channels = sizes.get(name, 0)
            per_channel = backbone.conv_kernel[position] * previous + int(backbone.conv_bias)
            per_channel += 2 if self._conv_norm_channels(position) else 0
            total = total + per_channel * channels
            previous = channels
        # feature projection: LayerNorm (weight, bias) and a projection column per channel of the last layer
        return total + previous * (2 + backbone.hidden_size)

    def _conv_module(self, position: int) -> nn.Module:
        return self.model.wav2vec2.feature_extractor.conv_layers[position]

    def _gate_conv(self, name: str, gate: torch.Tensor, hooks: _Hooks) -> None:
        position = self.conv_names().index(name)
        conv_layer = self._conv_module(position)
        if isinstance(getattr(conv_layer, "layer_norm", None), nn.LayerNorm):
            # LayerNorm over channels: statistics of the kept channels, as the pruned layer computes them
            norm = conv_layer.layer_norm
            hooks.output(norm, lambda out, args: _masked_layer_norm(args[0], norm, gate))
        hooks.output(conv_layer, lambda out, args: out * gate.to(out.dtype)[:, None])  # (N, C, T)
        if position == len(self.conv_names()) - 1:
            norm = self.model.wav2vec2.feature_projection.layer_norm  # over (N, T, C)
            hooks.output(norm, lambda out, args: _masked_layer_norm(args[0], norm, gate) * gate.to(out.dtype))

    def _set_conv_sizes(self, config, sizes: list[int]) -> None:
        config.wav2vec2_config.conv_dim = sizes

    def _slice_conv(self, name: str, index: torch.Tensor, take) -> None:
        position = self.conv_names().index(name)
        prefix = name
        take(f"{prefix}.conv.weight", 0, index)
        if self.config.wav2vec2_config.conv_bias:
            take(f"{prefix}.conv.bias", 0, index)
        if self._conv_norm_channels(position):
            take(f"{prefix}.layer_norm.weight", 0, index)
            take(f"{prefix}.layer_norm.bias", 0, index)
        if position < len(self.conv_names()) - 1:
            take(f"wav2vec2.feature_extractor.conv_layers.{position + 1}.conv.weight", 1, index)
        else:
            take("wav2vec2.feature_projection.layer_norm.weight", 0, index)
            take("wav2vec2.feature_projection.layer_norm.bias", 0, index)
            take("wav2vec2.feature_projection.projection.weight", 1, index)


def structure_of(model: MOSPreTrainedModel) -> StructureFamily:
    if isinstance(model, ConvTransformerForMOSRegression):
        return StudentStructure(model)
    if isinstance(model, XLSRForMOSRegression):
        return TeacherStructure(model)
    raise PruningError(f"no prunable structure is defined for {type(model).__name__}")


@contextlib.contextmanager
def gated(model: MOSPreTrainedModel, gates: Mapping[str, torch.Tensor]) -> Iterator[MOSPreTrainedModel]:
    """Run `model` with each named group's units multiplied by its gate ((units,) tensor; 1 keeps a unit,
    0 removes it). Groups not named are ungated."""
    family = structure_of(model)
    sizes = family.sizes()
    for name, gate in gates.items():
        if name in sizes and gate.shape != (sizes[name],):
            raise PruningError(f"gate {name} has shape {tuple(gate.shape)}, the group has {sizes[name]} units")
    hooks = _Hooks()
    try:
        family.install_gates(gates, hooks)
        yield model
    finally:
        hooks.remove()


def validate_keep(model: MOSPreTrainedModel, keep: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Complete and check a pruning plan: group -> (units,) bool, True = kept; groups not named keep all."""
    groups = {group.name: group for group in structure_of(model).groups()}
    unknown = sorted(set(keep) - set(groups))
    if unknown:
        raise PruningError(f"{type(model).__name__} has no prunable groups {unknown}")
    plan = {}
    for name, group in groups.items():
        mask = torch.as_tensor(keep.get(name, torch.ones(group.size, dtype=torch.bool))).to(torch.bool).flatten()
        if mask.numel() != group.size:
            raise PruningError(f"{name}: the plan has {mask.numel()} entries, the group has {group.size} units")
        plan[name] = mask
    for name, group in groups.items():
        if group.kind == "conv" and not plan[name].any():
            raise PruningError(f"{name}: pruning all {group.size} channels would leave an empty conv layer "
                               "(conv layers cannot be removed; keep at least one channel)")
        if group.block is not None and plan[group.block].all() and not plan[name].any():
            unit = "head" if group.kind == "heads" else "feed-forward unit"
            raise PruningError(
                f"{name}: pruning every {unit} of the layer without removing the layer's "
                f"{BLOCK_KINDS[group.kind]} block leaves an empty block; remove the block instead "
                f"({group.block}: False)")
    return plan


def prune_model(model: MOSPreTrainedModel, keep: Mapping[str, torch.Tensor]) -> MOSPreTrainedModel:
    """A new, smaller model holding only the kept units (same outputs as `gated(model, keep)`).

    keep: group name -> (units,) bool tensor, True = kept; groups not named keep everything. Removing a
    block (`...attention` / `...feed_forward`: [False]) removes its heads / FFN units too.
    """
    plan = validate_keep(model, keep)
    family = structure_of(model)
    kept = {name: int(mask.sum()) for name, mask in plan.items()}
    config = family.pruned_config(kept)
    slices = family.slices(plan)
    source = model.state_dict()
    parameter = next(model.parameters())
    pruned = type(model)(config)
    state = {}
    for key, target in pruned.state_dict().items():
        tensor = source[key]
        for dim, index in slices.get(key, []):
            tensor = tensor.index_select(dim, index.to(tensor.device))
        if tensor.shape != target.shape:
            raise RuntimeError(f"pruning {key}: sliced {tuple(tensor.shape)}, the pruned model has {tuple(target.shape)}")
        state[key] = tensor
    pruned.load_state_dict(state, strict=True)
    return pruned.to(device=parameter.device, dtype=parameter.dtype).train(model.training)
