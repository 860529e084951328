"""Warnings about data a network trains badly on, found before anything is trained: what was
changed on reading (``Dataset.notes``), classes without training examples, image values that look
like 0..255 pixels, and, for tabular features, constant columns and raw values that are huge or
on very different scales when standardization is off."""

from __future__ import annotations

import numpy as np

from rotelab.data.dataset import Dataset
from rotelab.errors import InvalidInputError

#: With standardization off, a feature whose largest |value| exceeds this gets a warning.
LARGE_VALUE = 1e3
#: With standardization off, columns whose standard deviations differ by more than this factor
#: (largest over smallest, constant columns left out) get a warning.
SCALE_RATIO = 1e2
#: With standardization off, images whose largest value exceeds this look like 0..255 pixels.
IMAGE_MAX = 10.0
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
    """One line per problem with a dataset that would otherwise stay silent until training fails.

    Statistics come from the training pool (``x_train`` (n_train, *feature_shape), the clean
    labels (n_train,)) and the test labels; the test features are not looked at.

    - every line of ``dataset.notes`` (how the input was changed on reading);
    - classes with no example at all (labels are read as class indices, so codes such as
      {0, 5, 10} leave classes empty), and test labels never seen in training;
    - images (``kind == "image"``) when ``standardize`` is False and a value exceeds
      :data:`IMAGE_MAX`: 0..255 pixels given as floats (uint8 ones are scaled on reading);
    - tabular features (``kind == "vector"``): a constant column (always), since it carries no
      information; when ``standardize`` is False, a column whose largest |value| exceeds
      :data:`LARGE_VALUE`, and columns whose standard deviations differ by more than
      :data:`SCALE_RATIO`-fold; both slow or derail training on raw values. A constant pixel
      or sequence step is normal and not reported.

    Returns the lines (possibly empty), each naming the dataset, what triggered it and the fix;
    printing them is up to the caller.

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
    lines = [*dataset.notes, *_label_warnings(dataset)]
    if dataset.kind == "image" and not standardize:
        lines += _pixel_range_warnings(dataset)
    if dataset.kind != "vector":
        return lines
    x = dataset.x_train.astype(np.float64)
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


def _class_list(dataset: Dataset, indices: np.ndarray) -> str:
    """Class names of ``indices`` (quoted unless they are the indices themselves), shortened."""
    names = [dataset.classes[i] for i in indices]
    shown = [n if n == str(i) else repr(n) for n, i in zip(names, indices)]
    more = f", … ({len(shown)} classes)" if len(shown) > _LIST_LIMIT else ""
    return ", ".join(shown[:_LIST_LIMIT]) + more


def _label_warnings(dataset: Dataset) -> list[str]:
    """Classes with no example at all, and test labels never seen in training: both are silent
    otherwise (the model keeps an output nothing trains; the test split counts sure errors)."""
    trained = np.bincount(dataset.clean_labels, minlength=dataset.n_classes) > 0
    tested = np.bincount(dataset.y_test, minlength=dataset.n_classes) > 0
    empty = np.flatnonzero(~trained & ~tested)
    lines = []
    if len(empty):
        indices = dataset.classes == tuple(str(i) for i in range(dataset.n_classes))
        fix = ("labels are read as class indices 0..max; remap them to 0..K-1, e.g. "
               "y = numpy.unique(y, return_inverse=True)[1]" if indices else
               "add examples of them or leave them out of the classes")
        lines.append(f"{dataset.name}: {len(empty)} of the {dataset.n_classes} classes "
                     f"{'has' if len(empty) == 1 else 'have'} no example: {_class_list(dataset, empty)}; {fix}")
    unseen = ~trained[dataset.y_test]
    if unseen.any():
        labels = np.unique(dataset.y_test[unseen])
        lines.append(f"{dataset.name}: {int(unseen.sum())} of {dataset.n_test} test examples have a label never "
                     f"seen in training ({_class_list(dataset, labels)}); no model can learn it and they count as "
                     "errors: give the training data examples of it or drop them from the test split")
    return lines


def _pixel_range_warnings(dataset: Dataset) -> list[str]:
    """Float images far above 1 (0..255 pixels that were not scaled): without standardization a
    network trains poorly or not at all on them."""
    peak = float(dataset.x_train.max())
    if peak <= IMAGE_MAX:
        return []
    return [f"{dataset.name}: image values go up to {peak:.4g} (above {IMAGE_MAX:g}), which looks like 0..255 "
            "pixels rather than [0, 1]; divide the images by 255 (uint8 images are scaled for you), "
            "or standardize them (--standardize; Python: standardize=True)"]


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
