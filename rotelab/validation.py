"""Shared ``check_*`` helpers: validate once, at the boundary (CLI, public API, file loaders).

Each raises :class:`~rotelab.errors.InvalidInputError` with a message that names the
parameter, what was expected and what was got.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rotelab.errors import InvalidInputError


def class_name(label: int, classes: Sequence[str] = ()) -> str:
    """``class 3``, or ``class 'cat' (label 3)`` when ``classes`` names it otherwise: users know
    their classes by their folders' or CSV values' names, not by rotelab's label indices."""
    name = classes[label] if 0 <= label < len(classes) else str(label)
    return f"class {label}" if name == str(label) else f"class {name!r} (label {label})"


def check_choice(name: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; else say which names exist."""
    choices = tuple(choices)
    if value not in choices:
        raise InvalidInputError(f"unknown {name} {value!r}: expected one of {', '.join(choices)}")
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise InvalidInputError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidInputError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in the interval given by ``low``/``high``."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(value):
        raise InvalidInputError(f"{name} must be finite, got {value}")
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    if low is not None and (value < low or (low_open and value == low)):
        raise InvalidInputError(f"{name} must be in {interval}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise InvalidInputError(f"{name} must be in {interval}, got {value}")
    return value


def check_array(name: str, value: Any, *, shape: str, numeric: bool = True) -> np.ndarray:
    """Return ``value`` as an array with as many axes as ``shape`` names (e.g. "(n_models,
    n_samples)"), not empty, and of a numeric (or bool) dtype when ``numeric``."""
    arr = np.asarray(value)
    ndim = len([axis for axis in shape.strip("()").split(",") if axis.strip()])
    if arr.ndim != ndim:
        raise InvalidInputError(f"{name} must have shape {shape}, got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidInputError(f"{name} is empty: got shape {arr.shape}")
    if numeric and not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidInputError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def check_features(name: str, x: Any) -> np.ndarray:
    """Return features as float32 of shape (n_samples, *feature_shape); reject NaN/inf."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise InvalidInputError(f"{name}: cannot read as an array ({exc})") from None
    if arr.ndim < 2:
        raise InvalidInputError(
            f"{name} must have shape (n_samples, *features), got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty: got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidInputError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        n_bad_rows = int(bad.reshape(len(arr), -1).any(axis=1).sum())
        raise InvalidInputError(
            f"{name} contains NaN or infinite values in {n_bad_rows} of {len(arr)} samples; "
            "remove or impute them first"
        )
    return arr


def check_labels(name: str, y: Any, *, n_samples: int, n_classes: int | None = None) -> np.ndarray:
    """Return labels as int64 of shape (n_samples,), each in ``[0, n_classes)``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must have shape (n_samples,), got shape {arr.shape}")
    if len(arr) != n_samples:
        raise InvalidInputError(
            f"inconsistent numbers of samples: {name} has {len(arr)} labels for {n_samples} samples"
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"{name} contains NaN or infinite labels")
        if not np.all(arr == np.round(arr)):
            raise InvalidInputError(f"{name} must hold whole-number class indices, got fractions")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise InvalidInputError(f"{name} has a negative label ({arr.min()}); labels must be 0..n_classes-1")
    if n_classes is not None and arr.size and arr.max() >= n_classes:
        raise InvalidInputError(
            f"{name} has label {arr.max()} out of range for {n_classes} classes (0..{n_classes - 1})"
        )
    return arr
