"""Warnings about tabular features that a network trains badly on: constant columns, and raw
values that are huge or on very different scales when standardization is off."""

from __future__ import annotations

import numpy as np

from rotelab.data.dataset import Dataset
from rotelab.errors import InvalidInputError

#: With standardization off, a feature whose largest |value| exceeds this gets a warning.
LARGE_VALUE = 1e3
#: With standardization off, columns whose standard deviations differ by more than this factor
#: (largest over smallest, constant columns left out) get a warning.
SCALE_RATIO = 1e2
#: Column names listed in one warning line before "… (N columns)".
_LIST_LIMIT = 5

_FIX = "drop --no-standardize (Python: standardize=True)"


def _names(dataset: Dataset, columns: np.ndarray) -> str:
    """Quoted column names (CSV header names when known, else "feature j", 0-based), shortened."""
    header = dataset.info.get("feature_columns")
    known = header is not None and len(header) == dataset.feature_shape[0]
    names = [repr(str(header[j])) if known else f"feature {j}" for j in columns]
    more = f", … ({len(names)} columns)" if len(names) > _LIST_LIMIT else ""
    return ", ".join(names[:_LIST_LIMIT]) + more


def feature_warnings(dataset: Dataset, *, standardize: bool) -> list[str]:
    """One line per problem with the features of a tabular (``kind == "vector"``) dataset.

    Statistics come from the training pool ``x_train`` of shape (n_train, D); the test split
    is not looked at. Other kinds (images, sequences) give no warnings: a constant pixel is
    normal there.

    - a feature column that is constant (always), since it carries no information;
    - when ``standardize`` is False: a column whose largest |value| exceeds
      :data:`LARGE_VALUE`, and columns whose standard deviations differ by more than
      :data:`SCALE_RATIO`-fold; both slow or derail training on raw values.

    Returns the lines (possibly empty), each naming the dataset, the columns, the number that
    triggered it and the fix; printing them is up to the caller.

    >>> from rotelab.data import make_dataset
    >>> ds = make_dataset("t", np.array([[1., 5e3], [2., 5e3], [3., 5e3], [4., 5e3], [5., 5e3]] * 2),
    ...                   np.arange(10) % 2)
    >>> feature_warnings(ds, standardize=True)
    ['t: 1 constant feature column (same value in all 8 training examples): feature 1; it carries no information, drop it']
    """
    if not isinstance(dataset, Dataset):
        raise InvalidInputError(f"feature_warnings needs a rotelab Dataset, got {type(dataset).__name__}")
    if not isinstance(standardize, bool):
        raise InvalidInputError(f"standardize must be True or False, got {standardize!r}")
    if dataset.kind != "vector":
        return []
    x = dataset.x_train.astype(np.float64)
    lines = []
    constant = np.flatnonzero(x.max(axis=0) == x.min(axis=0))
    if len(constant):
        one = len(constant) == 1
        lines.append(
            f"{dataset.name}: {len(constant)} constant feature column{'' if one else 's'} (same value in all "
            f"{dataset.n_train} training examples): {_names(dataset, constant)}; "
            f"{'it carries' if one else 'they carry'} no information, drop {'it' if one else 'them'}"
        )
    if not standardize:
        lines += _raw_scale_warnings(dataset, x, constant)
    return lines


def _raw_scale_warnings(dataset: Dataset, x: np.ndarray, constant: np.ndarray) -> list[str]:
    """Huge values and very different column scales in unstandardized features x (n, D)."""
    lines = []
    peak = np.abs(x).max(axis=0)
    large = np.flatnonzero(peak > LARGE_VALUE)
    if len(large):
        worst = large[np.argmax(peak[large])]
        lines.append(
            f"{dataset.name}: features are not standardized and {len(large)} column(s) exceed |x| = "
            f"{LARGE_VALUE:g} (largest {peak[worst]:.4g} in {_names(dataset, [worst])}): {_names(dataset, large)}; "
            f"a network trains poorly on raw values this large, {_FIX}"
        )
    varying = np.setdiff1d(np.arange(x.shape[1]), constant)
    if len(varying) >= 2:
        std = x[:, varying].std(axis=0)
        hi, lo = varying[np.argmax(std)], varying[np.argmin(std)]
        ratio = std.max() / std.min()
        if ratio > SCALE_RATIO:
            lines.append(
                f"{dataset.name}: features are not standardized and their scales differ {ratio:.3g}-fold "
                f"(standard deviation {std.max():.4g} for {_names(dataset, [hi])}, {std.min():.4g} for "
                f"{_names(dataset, [lo])}; more than {SCALE_RATIO:g}-fold); {_FIX}"
            )
    return lines
