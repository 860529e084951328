"""Data: built-in datasets, file loaders, label noise and subsets -> one :class:`Dataset`."""

from __future__ import annotations

from pathlib import Path

from rotelab.data.builtin import BUILTIN
from rotelab.data.dataset import ID_KINDS, KINDS, Dataset, make_dataset
from rotelab.data.features import feature_warnings
from rotelab.data.files import load_file
from rotelab.data.noise import flip_labels
from rotelab.data.subsets import stratified_subset
from rotelab.errors import InvalidInputError

__all__ = [
    "BUILTIN",
    "ID_KINDS",
    "KINDS",
    "Dataset",
    "make_dataset",
    "load_dataset",
    "feature_warnings",
    "flip_labels",
    "stratified_subset",
]


def load_dataset(
    data: str | Path | Dataset,
    *,
    train_size: int | None = None,
    label_noise: float = 0.0,
    seed: int = 0,
    **file_options,
) -> Dataset:
    """Resolve ``data`` and prepare it: a built-in name, a dataset file or directory, a
    :class:`Dataset`, ``(x, y[, x_test, y_test])`` arrays or tensors, or a torch Dataset.

    The subset is taken first and the noise injected into it, so ``--train-size 300
    --label-noise 0.2`` flips 60 of the 300 examples.
    """
    given = sorted(k for k, v in file_options.items() if v is not None)
    if given and (not isinstance(data, (str, Path)) or str(data) in BUILTIN):
        what = "built-in data" if isinstance(data, str) else "data given from Python"
        raise InvalidInputError(f"{given[0]} applies to dataset files (e.g. a CSV), not to {what}; leave it out")
    if isinstance(data, Dataset):
        ds = data
    elif not isinstance(data, (str, Path)):
        from rotelab.data.torchdata import from_user_data

        ds = from_user_data(data)
    elif str(data) in BUILTIN:
        ds = BUILTIN[str(data)]()
    else:
        path = Path(data)
        looks_like_path = path.suffix != "" or "/" in str(data) or path.exists()
        if not looks_like_path:
            raise InvalidInputError(
                f"unknown dataset {str(data)!r}: expected one of {', '.join(BUILTIN)} or a path to a "
                "dataset file (see `rotelab datasets`)"
            )
        ds = load_file(path, **file_options)
    if train_size is not None:
        ds = stratified_subset(ds, train_size, seed=seed)
    if label_noise:
        ds = flip_labels(ds, label_noise, seed=seed)
    return ds
