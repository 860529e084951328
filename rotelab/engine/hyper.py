"""Per-member strengths: each member of a job its own weight decay, dropout p, label-smoothing
ε, mixup α, augmentation probability or AWD λ_awd, as (K,) tensors read at every step.

Why tensors and not K recipes: one job trains K members at once; a fixed grid of strengths
is then one job with one member per grid point (and fold), and a controller (PBT, gap
feedback) changes a member's strength between steps by writing into the tensor, with
nothing rebuilt. A job without per-member values never touches this module: its step is
the scalar one, as fast as before.

Each strength means what the scalar one means (``rotelab.techniques``), with member k's value:

``l2``               decoupled weight decay on weight matrices/kernels: AdamW's
                     ``w ← w·(1 − lr·λ_k)`` before the step (SGD: ``λ_k·w`` added to the
                     gradient, as ``torch.optim.SGD`` does), so a member equals a job with l2=λ_k
``dropout``          p_k in every dropout layer (the model must have them: ``ModelSpec.dropout > 0``)
``label_smoothing``  targets (1 − ε_k)·one-hot + ε_k / C
``mixup``            λ ~ Beta(α_k, α_k) per sample; α_k = 0 leaves the member's batch unmixed
``augment``          each training sample is augmented with probability s_k ∈ [0, 1] (the
                     recipe's transforms; s_k = 1 is the plain ``augment`` technique)
``awd``              adaptive weight decay with coefficient λ_awd = a_k (``AdaptiveDecay``)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rotelab.engine.recipe import MEMBER_KNOBS, Recipe
from rotelab.errors import InvalidInputError

#: Valid range of each per-member strength: (low, high, high is open).
KNOB_RANGES = {"l2": (0.0, None, False), "dropout": (0.0, 1.0, True), "label_smoothing": (0.0, 1.0, True),
               "mixup": (0.0, None, False), "augment": (0.0, 1.0, False), "awd": (0.0, None, False)}


def check_member_values(recipe: Recipe, k: int) -> None:
    """Refuse per-member values with an unknown knob, the wrong count or out of range; the
    knobs that need a part of the model or recipe to exist (dropout layers, transforms)."""
    for name, values in recipe.member_values:
        if name not in MEMBER_KNOBS:
            raise InvalidInputError(f"unknown per-member strength {name!r}: expected one of {', '.join(MEMBER_KNOBS)}")
        if len(values) != k:
            raise InvalidInputError(f"per-member {name} has {len(values)} values for a job of {k} members")
        low, high, high_open = KNOB_RANGES[name]
        bad = [v for v in values if not (v >= low and (high is None or v < high or (v == high and not high_open)))]
        if bad:
            raise InvalidInputError(f"per-member {name} {bad[0]} is outside its range [{low}, {high or 'inf'}"
                                    f"{')' if high_open else ']'}")
    if recipe.values("dropout") is not None and not recipe.model.dropout:
        raise InvalidInputError("per-member dropout needs dropout layers in the model: build it with dropout > 0 "
                                "(the members' values replace that p)")
    if recipe.values("augment") is not None and not recipe.augment:
        raise InvalidInputError("per-member augmentation strength needs the recipe's transforms (augment=...)")


def member_tensors(recipe: Recipe, k: int, device: torch.device) -> dict[str, torch.Tensor]:
    """knob -> (K,) float32 tensor on ``device``: the per-member values, and the knob a
    controller changes (``recipe.adaptive.knob``) even when every member starts at the scalar
    value. Empty for a plain recipe (then the engine takes its scalar path)."""
    check_member_values(recipe, k)
    out = {name: torch.tensor(values, dtype=torch.float32, device=device) for name, values in recipe.member_values}
    knob = recipe.adaptive.knob if recipe.adaptive is not None else None
    if knob is not None and knob not in out:
        scalar = recipe.model.dropout if knob == "dropout" else float(bool(recipe.augment)) if knob == "augment" \
            else getattr(recipe, knob)
        out[knob] = torch.full((k,), float(scalar), device=device)
    if recipe.awd and "awd" not in out:
        out["awd"] = torch.full((k,), float(recipe.awd), device=device)
    return out


def per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) -> (K, 1, ..., 1) to broadcast over a member-first tensor ``like``."""
    return values.view(-1, *[1] * (like.dim() - 1))


def smooth_targets(target: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """One-hot targets (K, B, C) smoothed with member k's ε_k."""
    e = per_member(eps, target)
    return target * (1 - e) + e / target.shape[-1]


def augment_some(xb: torch.Tensor, augmented: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """Per sample, the augmented input with probability prob[k] (xb, augmented (K, B, *fs))."""
    take = torch.rand(xb.shape[:2], device=xb.device) < prob.view(-1, 1)
    return torch.where(take.view(*take.shape, *[1] * (xb.dim() - 2)), augmented, xb)


# ══ weight decay ═══════════════════════════════════════════════════════════════════════
@torch.no_grad()
def decay_members(decay: Sequence[tuple[torch.Tensor, int | None]], wd: torch.Tensor, lr: float,
                  optimizer: str) -> None:
    """Member k's weight decay λ_k on its weight tensors, called before ``opt.step()``.

    ``decay``: (tensor, member) pairs, member None for a stacked (K, ...) tensor. AdamW:
    ``w ← w·(1 − lr·λ_k)`` (what AdamW does before its update); SGD: ``grad += λ_k·w`` (what
    ``torch.optim.SGD(weight_decay=λ)`` does). So a member equals a job with that scalar l2.
    """
    for p, member in decay:
        lam = wd if member is None else wd[member]
        if optimizer == "sgd":
            if p.grad is not None:
                p.grad.add_(p * (per_member(lam, p) if member is None else lam))
        else:
            p.mul_(1 - lr * (per_member(lam, p) if member is None else lam))


class AdaptiveDecay:
    """Adaptive weight decay (Ghiasi, Shafahi & Ardekani, NeurIPS 2023, Algorithm 1), per member.

    At every step, from the gradient of the cross-entropy alone (before any decay):
    ``λ_t = λ_awd · ‖∇w‖ / ‖w‖`` over all of member k's parameters, smoothed as
    ``λ̄ ← 0.1·λ̄ + 0.9·λ_t`` (λ̄ starts at 0), then ``∇w += λ̄·w`` (coupled, as in the paper's
    update ``w ← w − lr(∇w + λ̄w)``; with Adam the decay goes through Adam's normalisation).
    The decay term's norm is then λ_awd × the gradient's norm (0.9× on the first step): it
    tracks how hard the loss still pulls, strong when the data are fitted and the gradient is
    mostly noise. ``lam_bar`` (K,) is the current λ̄; ``mean_lam`` accumulates it per epoch.
    """

    EMA = 0.1  # weight of the previous λ̄ (the paper's 0.1 / 0.9)

    def __init__(self, k: int, device: torch.device):
        self.lam_bar = torch.zeros(k, device=device)
        self.sum_lam = torch.zeros(k, device=device)
        self.steps = 0

    @staticmethod
    def target(coef: torch.Tensor, grad_sq: torch.Tensor, weight_sq: torch.Tensor) -> torch.Tensor:
        """λ_t (K,) = λ_awd · ‖∇w‖ / ‖w‖ from squared norms (K,)."""
        return coef * grad_sq.sqrt() / weight_sq.sqrt().clamp(min=1e-12)

    @torch.no_grad()
    def step(self, params: Sequence[tuple[torch.Tensor, int | None]], coef: torch.Tensor) -> None:
        """Update λ̄ from the current gradients and add λ̄·w to them; ``params`` as in
        :func:`decay_members` but every parameter (the paper decays all of them)."""
        k = len(self.lam_bar)
        grad_sq = torch.zeros(k, device=self.lam_bar.device)
        weight_sq = torch.zeros(k, device=self.lam_bar.device)
        for p, member in params:
            if p.grad is None:
                continue
            g, w = p.grad.square(), p.square()
            if member is None:
                grad_sq += g.flatten(1).sum(1)
                weight_sq += w.flatten(1).sum(1)
            else:
                grad_sq[member] += g.sum()
                weight_sq[member] += w.sum()
        self.lam_bar = self.EMA * self.lam_bar + (1 - self.EMA) * self.target(coef, grad_sq, weight_sq)
        for p, member in params:
            if p.grad is not None:
                p.grad.add_(p * (per_member(self.lam_bar, p) if member is None else self.lam_bar[member]))
        self.sum_lam += self.lam_bar
        self.steps += 1

    def epoch_mean(self) -> torch.Tensor:
        """Mean λ̄ (K,) over the steps since the last call."""
        mean = self.sum_lam / max(self.steps, 1)
        self.sum_lam = torch.zeros_like(self.sum_lam)
        self.steps = 0
        return mean


def member_of(named: Sequence[tuple[str, torch.Tensor]], stacked: bool) -> list[tuple[torch.Tensor, int | None]]:
    """(tensor, member) pairs: member None for stacked (K, ...) tensors, else the loop's index
    (its parameter names start with ``"<member>."``)."""
    return [(p, None if stacked else int(name.split(".", 1)[0])) for name, p in named]


__all__ = ["AdaptiveDecay", "KNOB_RANGES", "augment_some", "check_member_values", "decay_members", "member_of",
           "member_tensors", "per_member", "smooth_targets"]
