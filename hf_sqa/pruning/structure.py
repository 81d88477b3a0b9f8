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


@dataclass(frozen=True)
class LayerStack:
    """A list of transformer layers whose heads, FFN units and blocks can be pruned."""

    prefix: str  # module path of the layer list, e.g. "head.encoder.layers"
    heads: list[int]  # per layer, 0 where the attention block is gone
    ffn_sizes: list[int]  # per layer, 0 where the feed-forward block is gone
    hidden_size: int
    head_dim: int
    pre_norm: bool  # a pre-norm block owns its LayerNorm; post-norm LayerNorms sit on the residual path
    packed_qkv: bool  # nn.MultiheadAttention's in_proj_weight (the MOS head) or q/k/v_proj (wav2vec2)
    heads_field: str  # config fields holding the per-layer structure
    ffn_field: str

    def groups(self) -> list[UnitGroup]:
        groups = []
        for index, (num_heads, ffn) in enumerate(zip(self.heads, self.ffn_sizes)):
            base = f"{self.prefix}.{index}"
            if num_heads:
                groups += [UnitGroup(f"{base}.attention", "attention", 1),
                           UnitGroup(f"{base}.heads", "heads", num_heads, block=f"{base}.attention")]
            if ffn:
                groups += [UnitGroup(f"{base}.feed_forward", "feed_forward", 1),
                           UnitGroup(f"{base}.ffn", "ffn", ffn, block=f"{base}.feed_forward")]
        return groups

    def parameters(self, sizes: Mapping[str, torch.Tensor | float]):
        hidden = self.hidden_size
        # q, k, v (weights and biases) and out_proj's weight per head; out_proj's bias per block
        per_head = 4 * self.head_dim * hidden + 3 * self.head_dim
        block_extra = hidden + (2 * hidden if self.pre_norm else 0)
        total = 0
        for index in range(len(self.heads)):
            base = f"{self.prefix}.{index}"
            attention = sizes.get(f"{base}.attention", 0)
            total = total + attention * (sizes.get(f"{base}.heads", 0) * per_head + block_extra)
            feed_forward = sizes.get(f"{base}.feed_forward", 0)
            total = total + feed_forward * (sizes.get(f"{base}.ffn", 0) * (2 * hidden + 1) + block_extra)
        return total


class StructureFamily:
    """The prunable structure of one model family (see the module docstring)."""

    def __init__(self, model: MOSPreTrainedModel):
        self.model = model
        self.config = model.config
        self.stacks = self.layer_stacks()
        self._groups = [UnitGroup(name, "conv", size) for name, size in zip(self.conv_names(), self.conv_sizes())]
        self._groups += [group for stack in self.stacks for group in stack.groups()]
        self._by_name = {group.name: group for group in self._groups}
        actual = sum(p.numel() for p in model.parameters())
        # parameters no pruning touches (embeddings, norms on the residual path, the pooling, ...)
        self._constant_parameters = actual - int(self.dependent_parameters(self.sizes()))

    # -- structure -----------------------------------------------------------------------------------
    def layer_stacks(self) -> list[LayerStack]:
        config = self.config
        return [LayerStack("head.encoder.layers", config.head_heads_per_layer, config.head_ffn_sizes_per_layer,
                           config.head_hidden_size, config.head_attention_head_size, pre_norm=False,
                           packed_qkv=True, heads_field="head_layer_num_heads", ffn_field="head_layer_ffn_sizes")]

    def groups(self) -> list[UnitGroup]:
        return list(self._groups)

    def _stack_of(self, name: str) -> LayerStack:
        return next(stack for stack in self.stacks if name.startswith(stack.prefix + "."))

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
        total = self._conv_parameters(sizes)
        for stack in self.stacks:
            total = total + stack.parameters(sizes)
        return total

    def _conv_parameters(self, sizes):
        raise NotImplementedError

    def parameter_count(self, sizes: Mapping[str, torch.Tensor | float]):
        """Parameters of the model with structure `sizes` (same groups as `self.sizes()`)."""
        return self._constant_parameters + self.dependent_parameters(sizes)

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
                width = self._stack_of(name).head_dim if kind == "heads" else 1
                hooks.input(module, lambda x, g=gate, w=width: _gate_rows(x, g, w))

    def _gate_target(self, name: str) -> tuple[str, nn.Module | None]:
        group = self._by_name.get(name)
        if group is None:
            raise PruningError(f"{type(self.model).__name__} has no prunable group {name!r}")
        if group.kind == "conv":
            return "conv", None
        layer = self.model.get_submodule(name.rsplit(".", 1)[0])
        return group.kind, self._layer_module(layer, group.kind, self._stack_of(name).packed_qkv)

    @staticmethod
    def _layer_module(layer: nn.Module, kind: str, head_layer: bool) -> nn.Module:
        """The module whose output (blocks) or input (heads / ffn units) a gate multiplies."""
        attention = layer.self_attn if head_layer else layer.attention
        if kind == "heads":
            return attention.out_proj
        if kind == "attention":
            return attention
        if head_layer:  # HeadTransformerLayer's FFN has no module of its own: linear2 is its output
            return layer.linear2
        return layer.feed_forward if kind == "feed_forward" else layer.feed_forward.output_dense

    def _gate_conv(self, name: str, gate: torch.Tensor, hooks: _Hooks) -> None:
        raise NotImplementedError

    # -- pruning -------------------------------------------------------------------------------------
    def pruned_config(self, kept: Mapping[str, int]):
        """A copy of the config with the structure `kept` (group -> units kept, 0 for a removed block)."""
        config = copy.deepcopy(self.config)
        for stack in self.stacks:
            layers = [f"{stack.prefix}.{i}" for i in range(len(stack.heads))]
            setattr(config, stack.heads_field,
                    [kept.get(f"{base}.heads", 0) * kept.get(f"{base}.attention", 0) for base in layers])
            setattr(config, stack.ffn_field,
                    [kept.get(f"{base}.ffn", 0) * kept.get(f"{base}.feed_forward", 0) for base in layers])
        self._set_conv_sizes(config, [kept[name] for name in self.conv_names()])
        return type(config).from_dict(config.to_dict())  # re-validated

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
        stack = self._stack_of(group.name)
        if group.kind == "heads":
            head_dim = stack.head_dim
            rows = (index[:, None] * head_dim + torch.arange(head_dim)).flatten()
            if stack.packed_qkv:  # [q; k; v] rows of one in_proj_weight
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
            first, second = (("linear1", "linear2") if stack.packed_qkv
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

    def layer_stacks(self) -> list[LayerStack]:
        config, backbone = self.config, self.config.wav2vec2_config
        return [LayerStack("wav2vec2.encoder.layers", config.backbone_heads_per_layer,
                           config.backbone_ffn_sizes_per_layer, backbone.hidden_size,
                           config.backbone_attention_head_size, pre_norm=backbone.do_stable_layer_norm,
                           packed_qkv=False, heads_field="backbone_layer_num_heads",
                           ffn_field="backbone_layer_ffn_sizes")] + super().layer_stacks()

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
