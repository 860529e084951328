"""Augmentation transforms: a fresh random draw for every sample of every training batch.

``build_augment`` turns transform names (``rotelab.techniques.augment_technique.TRANSFORMS``)
into one function ``x (M, *feature_shape) -> (M, *feature_shape)``. The engine calls it on
the K members' batches flattened together, so each sample gets its own draw — never one draw
per batch, which would show a member the same distortion on all of it and augment far less.

Every draw comes from the global torch RNG, which the engine seeds per job: the same seed
gives the same augmented batches. The output keeps the input's dtype and device, and the
transforms are differentiable (they work under ``torch.no_grad`` and on inputs that require
grad). The order of the names and repeats do not matter: transforms run in a fixed order,
geometric ones before noise.

Images (C, H, W), with kornia:
  ``flip``       horizontal flip with probability 0.5
  ``rotate``     rotation by U(-10°, 10°)
  ``translate``  shift by up to 10% of the width and of the height (sub-pixel, bilinear)
  ``crop``       random resized crop: area 80–100% of the image, aspect 3/4–4/3, back to H×W;
                 boxes are whole pixels (as in torchvision), so an 8×8 image has only a
                 dozen or so distinct crops (7×7 … 8×8 at a few offsets)
  ``noise``      additive Gaussian noise, std 0.05 (images are on a [0, 1] scale)
``rotate`` and ``translate`` are one affine warp (one interpolation: less blur on 8×8 digits),
and pixels they bring in repeat the border, so no value outside the image appears.

Sequences (C, L), in plain torch:
  ``shift``      translation by an integer drawn from [-s, s], s = max(1, round(0.1·L)),
                 the same for all channels, padded with the edge value (not circular)
  ``scale``      amplitude scaling by U(0.9, 1.1) (amplitude only; no time stretch)
  ``noise``      additive Gaussian noise, std 0.05 × the sample's own standard deviation

Vectors (D,): ``noise`` as for sequences (std relative to the sample, so the transform
does not depend on the units of the features).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rotelab.errors import InvalidInputError
from rotelab.techniques.augment_technique import TRANSFORMS

Augment = Callable[[Tensor], Tensor]

#: feature rank each kind of data has: image (C, H, W), sequence (C, L), vector (D,)
RANKS = {"image": 3, "sequence": 2, "vector": 1}

ROTATE_DEGREES = 10.0
TRANSLATE_FRACTION = 0.1
CROP_SCALE = (0.8, 1.0)
IMAGE_NOISE_STD = 0.05
SHIFT_FRACTION = 0.1
SCALE_RANGE = (0.9, 1.1)
RELATIVE_NOISE_STD = 0.05


def build_augment(names: tuple[str, ...], *, kind: str, feature_shape: tuple[int, ...]) -> Augment:
    """The augmentation for ``kind`` data of ``feature_shape``: x (M, *feature_shape) -> same shape.

    ``names`` are transform names valid for ``kind`` (see the module docstring). Raises
    InvalidInputError for an unknown kind, a name that does not apply to the kind, no
    names, or a feature shape of the wrong rank for the kind.
    """
    if kind not in TRANSFORMS:
        raise InvalidInputError(f"unknown data kind {kind!r} for augmentation: expected one of {', '.join(TRANSFORMS)}")
    names = tuple(names)
    if not names:
        raise InvalidInputError(f"augmentation needs at least one transform: choose from {', '.join(TRANSFORMS[kind])}")
    bad = [n for n in names if n not in TRANSFORMS[kind]]
    if bad:
        raise InvalidInputError(
            f"augmentation {bad[0]!r} does not apply to {kind} data: use {', '.join(TRANSFORMS[kind])}"
        )
    feature_shape = tuple(int(s) for s in feature_shape)
    if len(feature_shape) != RANKS[kind] or min(feature_shape) < 1:
        raise InvalidInputError(
            f"{kind} data needs a non-empty feature shape of rank {RANKS[kind]}, got {feature_shape}"
        )
    chosen = set(names)
    if kind == "image":
        return _image_augment(chosen, feature_shape)
    steps = [step for name, step in (("shift", _shift), ("scale", _scale), ("noise", _relative_noise))
             if name in chosen]

    def augment(x: Tensor) -> Tensor:
        for step in steps:
            x = step(x)
        return x

    return augment


# ── images: kornia, per-sample parameters (same_on_batch=False) ─────────────────────────────
def _image_augment(chosen: set[str], feature_shape: tuple[int, ...]) -> Augment:
    import kornia.augmentation as K

    _, h, w = feature_shape
    layers: list[nn.Module] = []
    if "flip" in chosen:
        layers.append(K.RandomHorizontalFlip(p=0.5, same_on_batch=False))
    if "rotate" in chosen or "translate" in chosen:
        layers.append(K.RandomAffine(
            degrees=ROTATE_DEGREES if "rotate" in chosen else 0.0,
            translate=(TRANSLATE_FRACTION, TRANSLATE_FRACTION) if "translate" in chosen else None,
            padding_mode="border", p=1.0, same_on_batch=False,
        ))
    if "crop" in chosen:
        # "resample" crops the whole batch with one warp; "slice" crops sample by sample.
        layers.append(K.RandomResizedCrop((h, w), scale=CROP_SCALE, cropping_mode="resample",
                                          p=1.0, same_on_batch=False))
    pipeline = nn.Sequential(*layers)
    noise = "noise" in chosen

    def augment(x: Tensor) -> Tensor:
        if layers:
            x = pipeline(x)
        if noise:  # drawn on x's device (kornia's noise would draw on the CPU and copy)
            x = x + IMAGE_NOISE_STD * torch.randn_like(x)
        return x

    return augment


# ── sequences and vectors: plain torch, vectorized over samples ──────────────────────────────
def _per_sample(values: Tensor, x: Tensor) -> Tensor:
    """(M,) -> (M, 1, ..., 1) to broadcast over x's features."""
    return values.view(-1, *([1] * (x.dim() - 1)))


def _shift(x: Tensor) -> Tensor:
    """x (M, C, L) shifted by an integer in [-s, s] per sample; edge value fills the gap."""
    m, _, length = x.shape
    s = max(1, round(SHIFT_FRACTION * length))
    shift = torch.randint(-s, s + 1, (m,), device=x.device)
    src = (torch.arange(length, device=x.device) - shift[:, None]).clamp(0, length - 1)  # (M, L)
    return x.gather(-1, src[:, None, :].expand_as(x))


def _scale(x: Tensor) -> Tensor:
    low, high = SCALE_RANGE
    factor = torch.empty(len(x), device=x.device, dtype=x.dtype).uniform_(low, high)
    return x * _per_sample(factor, x)


def _relative_noise(x: Tensor) -> Tensor:
    std = x.detach().flatten(1).std(dim=1, correction=0)  # the sample's own scale, not a gradient path
    return x + RELATIVE_NOISE_STD * _per_sample(std, x) * torch.randn_like(x)


__all__ = ["Augment", "build_augment"]
