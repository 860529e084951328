"""The label-noise memorization probe (Zhang et al. 2017; Arpit et al. 2017).

Flip a fraction of the training labels (:func:`rotelab.data.noise.flip_labels`), train,
then ask how many of the flipped examples the model reproduces with their *wrong* label:
a flipped label carries no pattern to learn, so fitting it can only be memorization.
:func:`clean_accuracy` on held-out examples is the other half of the picture: a model can
memorize the noise and still generalize, or not.

Shapes: predictions and masks are ``(n_models, n_samples)``, labels ``(n_samples,)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rotelab.errors import InvalidInputError
from rotelab.validation import check_array, check_labels


# ── validation ─────────────────────────────────────────────────────────────────────────
def _check_pred(name: str, pred: Any) -> np.ndarray:
    """Return predicted class indices as int64 of shape (n_models, n_samples)."""
    arr = check_array(name, pred, shape="(n_models, n_samples)", numeric=False)
    return check_labels(name, arr.ravel(), n_samples=arr.size).reshape(arr.shape)


def _check_mask(name: str, mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Return a bool mask of exactly ``shape`` (n_models, n_samples)."""
    arr = np.asarray(mask)
    if arr.dtype != bool:
        raise InvalidInputError(f"{name} must be boolean, got dtype {arr.dtype}; pass mask.astype(bool)")
    if arr.shape != shape:
        raise InvalidInputError(
            f"{name} must have shape {shape} (n_models, n_samples), got shape {arr.shape}"
        )
    return arr


def _check_values(name: str, values: Any) -> np.ndarray:
    return check_array(name, values, shape="(n_models, n_samples)").astype(np.float64)


def _mean_over(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-row mean of ``values`` where ``mask``; NaN for an empty row. Trusts its inputs."""
    count = mask.sum(axis=1)
    total = np.where(mask, values, 0.0).sum(axis=1)  # values outside the mask never leak in
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# ── measures ───────────────────────────────────────────────────────────────────────────
def noisy_labels_memorized(pred: Any, given: Any, clean: Any, train_mask: Any) -> np.ndarray:
    """Fraction of each model's flipped training examples it predicts with the flipped label.

    Higher = more noise memorized (1.0: every wrong label reproduced). Only examples whose
    given label differs from the clean one *and* that were in the model's training set
    count; chance level is about ``1 / n_classes``. In-sample by design: this measures how
    much noise was fitted, not how well the model generalizes — pair it with
    :func:`clean_accuracy` on held-out examples.

    Parameters
    ----------
    pred : array-like of int of shape (n_models, n_samples)
        Predicted labels of each model on every sample.
    given : array-like of int of shape (n_samples,)
        Labels the models were trained on (the flipped ones where noise was injected).
    clean : array-like of int of shape (n_samples,)
        True labels.
    train_mask : bool array-like of shape (n_models, n_samples)
        True where the sample was in that model's training set.

    Returns
    -------
    ndarray of float64 of shape (n_models,)
        In [0, 1]; NaN for a model with no flipped example in its training set.

    >>> noisy_labels_memorized([[1, 1, 2, 0]], [1, 1, 0, 0], [1, 0, 2, 2], [[True, True, True, False]])
    array([0.5])
    """
    p = _check_pred("pred", pred)
    n_samples = p.shape[1]
    y_given = check_labels("given", given, n_samples=n_samples)
    y_clean = check_labels("clean", clean, n_samples=n_samples)
    train = _check_mask("train_mask", train_mask, p.shape)
    flipped = train & (y_given != y_clean)[None, :]
    return _mean_over(p == y_given[None, :], flipped)


def clean_accuracy(pred: Any, clean: Any, mask: Any) -> np.ndarray:
    """Accuracy of each model against the clean (true) labels over the masked samples.

    Higher = better. With ``mask`` the validation (held-out) mask this is generalization;
    with the training mask on noisy data a *low* value on the flipped examples is the same
    memorization :func:`noisy_labels_memorized` measures.

    Parameters
    ----------
    pred : array-like of int of shape (n_models, n_samples)
    clean : array-like of int of shape (n_samples,)
    mask : bool array-like of shape (n_models, n_samples)
        Which samples count for each model.

    Returns
    -------
    ndarray of float64 of shape (n_models,)
        In [0, 1]; NaN for a model whose mask row is empty.

    >>> clean_accuracy([[0, 1, 1], [0, 0, 0]], [0, 1, 0], [[True, True, True], [False, False, False]])
    array([0.66666667,        nan])
    """
    p = _check_pred("pred", pred)
    y_clean = check_labels("clean", clean, n_samples=p.shape[1])
    m = _check_mask("mask", mask, p.shape)
    return _mean_over(p == y_clean[None, :], m)


def masked_mean(values: Any, mask: Any) -> np.ndarray:
    """Mean of per-sample values over each model's masked samples (e.g. train/validation loss).

    Direction follows ``values`` (a loss: lower is better; a 0/1 correctness: higher is
    better). NaN inside the mask propagates, so a diverged model shows as NaN rather than
    a misleading number; values outside the mask are ignored.

    Parameters
    ----------
    values : array-like of shape (n_models, n_samples)
    mask : bool array-like of shape (n_models, n_samples)

    Returns
    -------
    ndarray of float64 of shape (n_models,)
        NaN for a model whose mask row is empty.

    >>> masked_mean([[1.0, 3.0, np.nan]], [[True, True, False]])
    array([2.])
    """
    v = _check_values("values", values)
    m = _check_mask("mask", mask, v.shape)
    return _mean_over(v, m)
