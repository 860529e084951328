"""Loaders for the dataset files users already have; ``load_file`` detects the format.

Formats: .npz (here), MNIST-style IDX (:mod:`~rotelab.data.idx`), CIFAR-10/100 python
archives (:mod:`~rotelab.data.cifar`), image folders (:mod:`~rotelab.data.imagefolder`) and
CSV tables (:mod:`~rotelab.data.csvfile`). Every loader validates what it reads and raises
:class:`~rotelab.errors.InvalidInputError` naming the file and the problem; none executes
code from the file or writes anything to disk. Each fills ``Dataset.info`` with at least
``format``, ``path`` and ``test_split`` (where the test split came from).
"""

from __future__ import annotations

import inspect
import zipfile
from pathlib import Path

import numpy as np

from rotelab.data.cifar import LABEL_MODES, load_cifar, looks_like_cifar_dir
from rotelab.data.csvfile import CSV_SUFFIXES, load_csv
from rotelab.data.dataset import Dataset, make_dataset
from rotelab.data.idx import idx_directory, load_idx, looks_like_idx
from rotelab.data.imagefolder import load_image_folder
from rotelab.errors import InvalidInputError
from rotelab.validation import check_choice

__all__ = [
    "FORMATS",
    "FORMAT_HELP",
    "LABEL_MODES",
    "detect_format",
    "load_file",
    "load_npz",
    "load_idx",
    "load_cifar",
    "load_image_folder",
    "load_csv",
]


def load_npz(path: str | Path) -> Dataset:
    """Read ``x``, ``y`` and optional ``x_test``, ``y_test``, ``classes``, ``kind`` from an .npz.

    Without ``x_test``/``y_test`` a stratified 20% of the data becomes the test split. uint8
    image arrays are scaled to [0, 1] and (N, H, W, C) ones transposed, as by
    :func:`~rotelab.data.make_dataset`. Object arrays are refused (``allow_pickle=False``): an
    .npz cannot run code.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: file not found")
    _check_zip(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            missing = {"x", "y"} - keys
            if missing:
                raise InvalidInputError(
                    f"{path}: missing array(s) {', '.join(sorted(missing))}; an .npz needs 'x' and 'y' "
                    f"(optional 'x_test', 'y_test', 'classes'), found {', '.join(sorted(keys)) or 'none'}"
                )
            arrays = {k: _npz_array(f, k, path) for k in keys & {"x", "y", "x_test", "y_test", "classes", "kind"}}
    except InvalidInputError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a readable .npz file ({exc})") from None
    classes = arrays.get("classes")
    kind = arrays.get("kind")
    ds = make_dataset(
        path.name,
        arrays["x"],
        arrays["y"],
        arrays.get("x_test"),
        arrays.get("y_test"),
        classes=None if classes is None else [str(c) for c in classes.tolist()],
        kind=None if kind is None else str(kind),
        description=f"arrays from {path}",
    )
    given = "x_test" in arrays and "y_test" in arrays
    split = "x_test, y_test" if given else "held out 20%"
    return ds.with_(info={"format": "npz", "path": str(path), "test_split": split})


def _check_zip(path: Path) -> None:
    """Refuse a file that is not a zip archive in one line with the fix: numpy would otherwise try
    it as a pickle and advise allow_pickle=True, which rotelab never does."""
    if zipfile.is_zipfile(path):
        return
    with open(path, "rb") as f:
        npy = f.read(6) == b"\x93NUMPY"
    what = "a single .npy array, not named arrays" if npy else "not a zip archive, which is what numpy.savez writes"
    raise InvalidInputError(
        f"{path}: not a readable .npz file ({what}); save the arrays with np.savez(path, x=..., y=...)"
    )


def _npz_array(f, key: str, path: Path) -> np.ndarray:
    """One array of an open .npz; an object array is refused with the fix, not numpy's allow_pickle advice."""
    try:
        return f[key]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        dtype = "str" if key in ("classes", "kind") else "np.int64" if key.startswith("y") else "np.float32"
        raise InvalidInputError(
            f"{path}: array {key!r} holds Python objects (dtype object), which rotelab never loads; "
            f"save it as numbers or strings, e.g. np.asarray({key}, dtype={dtype})"
        ) from None


#: format name -> loader; each loader's keyword-only parameters are its options.
FORMATS = {
    "npz": load_npz,
    "idx": load_idx,
    "cifar": load_cifar,
    "imagefolder": load_image_folder,
    "csv": load_csv,
}

#: format name -> one line for ``rotelab datasets`` and error messages.
FORMAT_HELP = {
    "npz": ".npz with arrays x, y (optional x_test, y_test, classes, kind)",
    "idx": "MNIST-style IDX files: a directory with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz] "
    "(optional t10k-*), or one images file with its labels file beside it",
    "cifar": "CIFAR-10/100 python version: cifar-10-python.tar.gz, cifar-100-python.tar.gz or the extracted "
    "directory (option label_mode: fine|coarse)",
    "imagefolder": "a directory with one subfolder of images per class, optionally inside train/ and test/",
    "csv": ".csv or .tsv with a header row, numeric feature columns and a label column (option label_column)",
}


def detect_format(path: str | Path) -> str:
    """Name the format of ``path`` (a key of :data:`FORMATS`) from its name and contents."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path}: file not found")
    if path.is_dir():
        entries = list(path.iterdir())
        if idx_directory(path) is not None:
            return "idx"
        if looks_like_cifar_dir(path):
            return "cifar"
        if any(p.is_dir() and not p.name.startswith(".") for p in entries):
            return "imagefolder"
        raise InvalidInputError(
            f"{path}: unrecognised dataset directory; expected MNIST-style IDX files, an extracted CIFAR "
            "directory, or one subfolder of images per class"
        )
    name = path.name.lower()
    if name.endswith(".npz"):
        return "npz"
    if path.suffix.lower() in CSV_SUFFIXES:
        return "csv"
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "cifar"
    if looks_like_idx(path):
        return "idx"
    raise InvalidInputError(
        f"{path}: unrecognised dataset format; expected one of: "
        + "; ".join(f"{fmt} ({help_})" for fmt, help_ in FORMAT_HELP.items())
    )


def load_file(path: str | Path, *, format: str | None = None, **options) -> Dataset:
    """Load a dataset file or directory, choosing the loader from its name and contents.

    ``format`` (a key of :data:`FORMATS`) skips detection. ``options`` go to that format's
    loader: ``label_column`` for csv, ``label_mode`` for cifar; an option the format does not
    take is an error, and an option set to None counts as not given (so a CLI can pass its
    defaults through).
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path}: file not found")
    fmt = detect_format(path) if format is None else check_choice("format", format, FORMATS)
    loader = FORMATS[fmt]
    options = {k: v for k, v in options.items() if v is not None}
    accepted = [p.name for p in inspect.signature(loader).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unexpected = sorted(set(options) - set(accepted))
    if unexpected:
        takes = f"it takes {', '.join(accepted)}" if accepted else "it takes no options"
        raise InvalidInputError(
            f"{path}: option {', '.join(unexpected)} does not apply to the {fmt} format ({takes})"
        )
    return loader(path, **options)
