"""Loaders for the dataset files users already have; ``load_file`` detects the format.

Every loader validates what it reads and raises :class:`~rotelab.errors.InvalidInputError`
naming the file and the problem; none executes code from the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from rotelab.data.dataset import Dataset, make_dataset
from rotelab.errors import InvalidInputError


def load_npz(path: str | Path) -> Dataset:
    """Read ``x``, ``y`` and optional ``x_test``, ``y_test``, ``classes``, ``kind`` from an .npz.

    Without ``x_test``/``y_test`` a stratified 20% of the data becomes the test split.
    Object arrays are refused (``allow_pickle=False``): an .npz cannot run code.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            missing = {"x", "y"} - keys
            if missing:
                raise InvalidInputError(
                    f"{path}: missing array(s) {', '.join(sorted(missing))}; an .npz needs 'x' and 'y' "
                    f"(optional 'x_test', 'y_test', 'classes'), found {', '.join(sorted(keys)) or 'none'}"
                )
            arrays = {k: f[k] for k in keys & {"x", "y", "x_test", "y_test", "classes", "kind"}}
    except InvalidInputError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a readable .npz file ({exc})") from None
    classes = arrays.get("classes")
    kind = arrays.get("kind")
    return make_dataset(
        path.name,
        arrays["x"],
        arrays["y"],
        arrays.get("x_test"),
        arrays.get("y_test"),
        classes=None if classes is None else [str(c) for c in classes.tolist()],
        kind=None if kind is None else str(kind),
        description=f"arrays from {path}",
    )


#: suffix -> loader; extended by the file-format loaders.
LOADERS = {".npz": load_npz}


def load_file(path: str | Path, **options) -> Dataset:
    """Load a dataset file or directory, choosing the loader from its name and contents."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path}: file not found")
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise InvalidInputError(
            f"{path}: unrecognised dataset format; expected one of: {', '.join(sorted(LOADERS))}"
        )
    return loader(path, **options)
