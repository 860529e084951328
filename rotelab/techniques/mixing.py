"""mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) on the K members' batches at once.

``build_mixer`` returns ``mix(x (K, B, *feature_shape), targets (K, B, C)) -> (x, targets)``.
Each member's batch is blended with a random permutation of *its own* batch — never with
another member's examples: the members are independent models, and a member's training
subset is what its memorization is measured against.

* **mixup**: ``x = λ·x + (1−λ)·x[perm]`` and the targets likewise, with λ ~ Beta(α, α)
  drawn **per sample** (each example its own λ; the paper draws one per batch — per
  sample gives the same expected blend with less variance between steps).
* **CutMix** (images (C, H, W), sequences (C, L)): per sample, λ ~ Beta(α, α) sets a box
  of area fraction 1−λ (2-D, with the image's aspect ratio; a segment for sequences)
  centred uniformly at random and clipped at the edges; the partner's values are pasted
  into it, and the targets are mixed by the area actually pasted (after clipping).
* both on: each member's batch uses one or the other, chosen with probability 0.5 at every
  step (one coin per member and step, not per sample).

Draws come from the global torch RNG (seeded per job by the engine) on x's device.

``mix(x, targets, alpha)`` with ``alpha`` (K,) gives member k its own mixup α_k (per-member
strengths, ``rotelab.engine.hyper``); a member with α_k = 0 keeps its batch unmixed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rotelab.errors import InvalidInputError
from rotelab.validation import check_float

Mixer = Callable[..., tuple[Tensor, Tensor]]

#: feature rank by data kind: image (C, H, W), sequence (C, L), vector (D,)
RANKS = {"image": 3, "sequence": 2, "vector": 1}
CUTMIX_KINDS = ("image", "sequence")


def build_mixer(*, mixup: float, cutmix: float, kind: str) -> Mixer:
    """The mixing step for ``kind`` data; ``mixup``/``cutmix`` are the Beta(α, α) α's, 0 = off.

    Raises InvalidInputError for an unknown kind, a negative or non-finite α, both α zero,
    or CutMix on vector data.
    """
    if kind not in RANKS:
        raise InvalidInputError(f"unknown data kind {kind!r} for mixing: expected one of {', '.join(RANKS)}")
    mixup = check_float("mixup α", mixup, low=0.0)
    cutmix = check_float("cutmix α", cutmix, low=0.0)
    if not mixup and not cutmix:
        raise InvalidInputError("mixing needs mixup α > 0 or cutmix α > 0, got both 0")
    if cutmix and kind not in CUTMIX_KINDS:
        raise InvalidInputError(f"cutmix needs images or sequences, got {kind} data; use mixup instead")
    rank = RANKS[kind]

    def mix(x: Tensor, targets: Tensor, alpha: Tensor | None = None) -> tuple[Tensor, Tensor]:
        k, b = x.shape[:2]
        if x.dim() != 2 + rank or targets.shape[:2] != (k, b):
            raise InvalidInputError(
                f"mixing {kind} data needs x (K, B, {'C, H, W' if rank == 3 else 'C, L' if rank == 2 else 'D'}) "
                f"and targets (K, B, C), got {tuple(x.shape)} and {tuple(targets.shape)}"
            )
        # each member's own permutation of its own batch
        perm = torch.rand(k, b, device=x.device).argsort(dim=1)
        rows = torch.arange(k, device=x.device)[:, None]
        x2, t2 = x[rows, perm], targets[rows, perm]
        # w: per element, how much comes from the partner; share: the partner's target weight
        mix_alpha = mixup if alpha is None else alpha
        if mixup and cutmix:
            use_cut = torch.rand(k, device=x.device) < 0.5
            w_mix, share_mix = _mixup_weights(x, mix_alpha)
            w_cut, share_cut = _cutmix_weights(x, cutmix, rank)
            sel = use_cut.view(k, *([1] * (x.dim() - 1)))
            w = torch.where(sel, w_cut, w_mix)
            share = torch.where(use_cut[:, None], share_cut, share_mix)
        elif mixup:
            w, share = _mixup_weights(x, mix_alpha)
        else:
            w, share = _cutmix_weights(x, cutmix, rank)
        x_out = x + w * (x2 - x)
        t_out = targets + share.unsqueeze(-1).to(targets.dtype) * (t2 - targets)
        return x_out, t_out

    return mix


def _beta(x: Tensor, alpha: float | Tensor) -> Tensor:
    """λ (K, B) ~ Beta(α, α), float32 on x's device; α one value or (K,) (λ = 1 where α_k = 0)."""
    if isinstance(alpha, Tensor):
        a = torch.where(alpha > 0, alpha, torch.ones_like(alpha)).view(-1, 1).expand(x.shape[:2]).float()
        lam = torch.distributions.Beta(a, a).sample()
        return torch.where((alpha > 0).view(-1, 1), lam, torch.ones_like(lam))
    a = torch.tensor(float(alpha), device=x.device)
    return torch.distributions.Beta(a, a).sample(x.shape[:2])


def _mixup_weights(x: Tensor, alpha: float | Tensor) -> tuple[Tensor, Tensor]:
    lam = _beta(x, alpha)
    share = 1.0 - lam
    return share.view(*share.shape, *([1] * (x.dim() - 2))).to(x.dtype), share


def _segment(n: int, frac: Tensor) -> Tensor:
    """Bool (K, B, n): a segment of length round(n·frac) centred uniformly in [0, n), clipped."""
    length = torch.round(n * frac)
    centre = torch.randint(0, n, frac.shape, device=frac.device)
    lo = (centre - torch.div(length, 2, rounding_mode="floor")).clamp(0, n)
    hi = (centre + length - torch.div(length, 2, rounding_mode="floor")).clamp(0, n)
    pos = torch.arange(n, device=frac.device)
    return (pos >= lo.unsqueeze(-1)) & (pos < hi.unsqueeze(-1))


def _cutmix_weights(x: Tensor, alpha: float, rank: int) -> tuple[Tensor, Tensor]:
    """Box mask (K, B, 1, *spatial) as x's dtype, and the pasted area fraction (K, B)."""
    cut = 1.0 - _beta(x, alpha)  # area fraction to paste
    if rank == 3:  # each side scaled by sqrt(area) keeps the image's aspect ratio
        h, w = x.shape[-2:]
        side = cut.sqrt()
        mask = _segment(h, side)[..., :, None] & _segment(w, side)[..., None, :]  # (K, B, H, W)
    else:
        mask = _segment(x.shape[-1], cut)  # (K, B, L)
    mask = mask.unsqueeze(2)  # broadcast over channels
    area = mask.flatten(2).float().mean(-1)
    return mask.to(x.dtype), area


__all__ = ["Mixer", "build_mixer"]
