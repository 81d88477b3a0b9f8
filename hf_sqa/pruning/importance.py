"""Data-driven importance of every prunable unit (see `structure` for the unit groups).

taylor  Removing unit u sets its gate g_u from 1 to 0. For the squared error of clip i against a target
        t_i (the unpruned model's score: distillation; or the human MOS), with e_i = y_i - t_i and
        d_iu = dy_i/dg_u (the unit's activations times the output's gradient, summed over its positions),
        the Gauss-Newton Taylor expansion estimates the loss increase
            dL_iu = (e_i - d_iu)^2 - e_i^2 = d_iu^2 - 2 e_i d_iu.
        The first-order term alone vanishes for the distillation loss at the unpruned model (e = 0), which
        is why the second-order term is kept. Importance = dL summed over calibration clips.
l0      HardConcrete gates (Louizos et al. 2018; DPHuBERT's set-up) trained jointly with the model on the
        distillation loss plus a Lagrangian pushing the expected parameter count to the target. Importance
        = each unit's probability of being kept; the model's weights are updated in place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from ..models import MOSPreTrainedModel
from .structure import gated, structure_of


def _reference_scores(reference: MOSPreTrainedModel, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return reference(input_values=batch["input_values"], attention_mask=batch["attention_mask"]).mos.float()


def _targets(batch: dict, reference: MOSPreTrainedModel | None, loss: str) -> torch.Tensor:
    if loss == "distill":
        if reference is None:
            raise ValueError("the distillation loss needs the unpruned reference model")
        return _reference_scores(reference, batch)
    if loss == "mos":
        labels = batch.get("labels")
        if labels is None or not bool(torch.isfinite(labels).all()):
            raise ValueError("importance of the MOS loss needs a human MOS for every calibration clip")
        return labels.float()
    raise ValueError(f"importance loss must be 'distill' or 'mos', got {loss!r}")


def taylor_importance(
    model: MOSPreTrainedModel,
    batches: Iterable[dict],
    reference: MOSPreTrainedModel | None = None,
    loss: str = "distill",
) -> dict[str, torch.Tensor]:
    """group name -> (units,) estimated loss increase when each unit alone is removed (see module doc).

    batches: MOSCollator batches (input_values, attention_mask[, labels]); the model runs in eval mode.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    groups = structure_of(model).groups()
    gates = {g.name: torch.ones(g.size, device=device, requires_grad=True) for g in groups}
    importance = {g.name: torch.zeros(g.size, device=device) for g in groups}
    names = list(gates)
    try:
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            targets = _targets(batch, reference, loss)
            lengths = batch["attention_mask"].sum(dim=-1).tolist()
            # per clip (d_iu enters squared), each through its own forward: in eval mode a clip's score does
            # not depend on the rest of the batch, and a backward through one clip's graph costs 1/B of a
            # backward through the batch's (Distill-MOS, 64 clips: minutes -> seconds per step)
            for i, length in enumerate(lengths):
                with torch.enable_grad(), gated(model, gates):
                    score = model(input_values=batch["input_values"][i : i + 1, :length]).mos[0]
                    grads = torch.autograd.grad(score, [gates[n] for n in names], allow_unused=True)
                error = score.detach().float() - targets[i]
                for name, grad in zip(names, grads):
                    if grad is not None:
                        importance[name] += grad.float() ** 2 - 2 * error * grad.float()
    finally:
        model.train(was_training)
    return {name: value.cpu() for name, value in importance.items()}


class HardConcreteGates(nn.Module):
    """One HardConcrete gate per unit: stretched, clamped binary concrete with learned log_alpha."""

    def __init__(self, sizes: dict[str, int], init_drop: float = 0.05, temperature: float = 2 / 3,
                 stretch: tuple[float, float] = (-0.1, 1.1)):
        super().__init__()
        self.temperature = temperature
        self.low, self.high = stretch
        start = math.log(1 - init_drop) - math.log(init_drop)
        self.log_alpha = nn.ParameterDict(
            {name.replace(".", "/"): nn.Parameter(torch.full((size,), start) + 0.01 * torch.randn(size))
             for name, size in sizes.items()}
        )

    def _named(self):
        return {key.replace("/", "."): value for key, value in self.log_alpha.items()}

    def sample(self) -> dict[str, torch.Tensor]:
        gates = {}
        for name, log_alpha in self._named().items():
            u = torch.rand_like(log_alpha).clamp(1e-6, 1 - 1e-6)
            s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + log_alpha) / self.temperature)
            gates[name] = (s * (self.high - self.low) + self.low).clamp(0.0, 1.0)
        return gates

    def keep_probability(self) -> dict[str, torch.Tensor]:
        """P(gate > 0) per unit."""
        shift = self.temperature * math.log(-self.low / self.high)
        return {name: torch.sigmoid(log_alpha - shift) for name, log_alpha in self._named().items()}


def l0_importance(
    model: MOSPreTrainedModel,
    batches: list[dict],
    reference: MOSPreTrainedModel,
    target_params: int,
    steps: int = 100,
    learning_rate: float = 1e-4,
    gate_learning_rate: float = 0.3,
    seed: int = 0,
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """(group -> keep probability per unit, training log). Trains gates and weights for `steps` steps
    (cycling over `batches`) on MSE to the reference plus l1 * (E[params] - target) / P + l2 * (...)^2,
    with Lagrange multipliers l1, l2 maximised, as DPHuBERT does; the target ramps down linearly from the
    model's size over the first half of the steps. P: the model's parameters."""
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    family = structure_of(model)
    total = float(sum(p.numel() for p in model.parameters()))
    gates = HardConcreteGates(family.sizes()).to(device)
    lambdas = nn.Parameter(torch.zeros(2, device=device))
    weights = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": weights, "lr": learning_rate},
                                   {"params": gates.parameters(), "lr": gate_learning_rate, "weight_decay": 0.0}])
    multiplier_optimizer = torch.optim.AdamW([lambdas], lr=gate_learning_rate, maximize=True, weight_decay=0.0)
    targets = [_reference_scores(reference, {k: v.to(device) for k, v in b.items()}) for b in batches]
    was_training = model.training
    model.train()
    log = []
    try:
        for step in range(steps):
            batch = {k: v.to(device) for k, v in batches[step % len(batches)].items()}
            with gated(model, gates.sample()):
                scores = model(input_values=batch["input_values"], attention_mask=batch["attention_mask"]).mos
            distill = nn.functional.mse_loss(scores.float(), targets[step % len(batches)])
            expected = {name: p.sum() for name, p in gates.keep_probability().items()}
            # the target falls linearly from the model's size to the final target over the first half
            ramp = min(1.0, (step + 1) / max(steps // 2, 1))
            step_target = total + ramp * (target_params - total)
            gap = (family.parameter_count(expected) - step_target) / total
            loss = distill + lambdas[0] * gap + lambdas[1] * gap**2
            optimizer.zero_grad()
            multiplier_optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            multiplier_optimizer.step()
            log.append({"step": step, "distill": distill.item(), "expected_params": gap.item() * total + step_target})
    finally:
        model.train(was_training)
    with torch.no_grad():
        return {name: p.detach().cpu() for name, p in gates.keep_probability().items()}, log
