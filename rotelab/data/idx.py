"""MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST): raw or gzipped, parsed with numpy.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number of
dimensions), one big-endian uint32 per dimension, then the data in C order.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from rotelab.data.dataset import Dataset, make_dataset
from rotelab.errors import InvalidInputError

#: ``train-images-idx3-ubyte``, ``t10k-labels.idx1-ubyte.gz`` and the like (some mirrors use '.').
IDX_NAME = re.compile(r"^(train|t10k)-(images|labels)([.-])idx([13])-ubyte(\.gz)?$")

_DTYPE_CODES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
_NDIM = {"images": 3, "labels": 1}


def looks_like_idx(path: Path) -> bool:
    """True if the name is a standard IDX name or the first bytes are an IDX magic number."""
    if IDX_NAME.match(path.name):
        return True
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as f:
            head = f.read(4)
    except (OSError, EOFError, zlib.error):
        return False
    return len(head) == 4 and head[:2] == b"\x00\x00" and head[2] in _DTYPE_CODES and 1 <= head[3] <= 4


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes into a uint8 array of the shape in its header.

    Checks the magic number, the dtype code (only 0x08, unsigned byte), ``ndim`` when given,
    and that the data length matches the header (a truncated download is an error).
    """
    path = Path(path)
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"{path}: cannot read the file ({exc}); download it again") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        magic = raw[:4].hex() or "empty"
        raise InvalidInputError(
            f"{path}: not an IDX file: magic number 0x{magic}, expected two zero bytes, a dtype code "
            "and the number of dimensions (e.g. 0x00000803)"
        )
    code, n_dims = raw[2], raw[3]
    if code != 0x08:
        got = _DTYPE_CODES.get(code, "unknown")
        raise InvalidInputError(
            f"{path}: IDX dtype code 0x{code:02X} ({got}) is not supported; expected 0x08 (unsigned byte)"
        )
    if ndim is not None and n_dims != ndim:
        raise InvalidInputError(f"{path}: expected an IDX file with {ndim} dimension(s), got {n_dims}")
    header = 4 + 4 * n_dims
    if len(raw) < header:
        raise InvalidInputError(f"{path}: truncated IDX header ({len(raw)} bytes); download the file again")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=n_dims, offset=4))
    expected, got = int(np.prod(shape, dtype=np.int64)), len(raw) - header
    if got != expected:
        problem = "truncated" if got < expected else "longer than its header says"
        raise InvalidInputError(
            f"{path}: IDX file is {problem}: header shape {shape} needs {expected} data bytes, "
            f"file holds {got}; download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def idx_directory(path: Path) -> Path | None:
    """``path`` if it holds IDX files, else its ``raw/`` (torchvision's MNIST layout) if that does."""
    for directory in (path, path / "raw"):
        if directory.is_dir() and any(IDX_NAME.match(p.name) for p in directory.iterdir()):
            return directory
    return None


def _find_idx_files(directory: Path) -> dict[tuple[str, str], Path]:
    """(split, images|labels) -> path, preferring the uncompressed file when both exist."""
    found: dict[tuple[str, str], Path] = {}
    for p in sorted(directory.iterdir(), key=lambda p: (p.name.lower().endswith(".gz"), p.name)):
        m = IDX_NAME.match(p.name)
        if m and p.is_file() and _NDIM[m.group(2)] == int(m.group(4)):
            found.setdefault((m.group(1), m.group(2)), p)
    return found


def _read_split(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(images, ndim=3)
    y = read_idx(labels, ndim=1)
    if len(x) != len(y):
        raise InvalidInputError(
            f"inconsistent numbers of samples: {images} holds {len(x)} images but {labels} holds {len(y)} labels"
        )
    return x[:, None], y.astype(np.int64)  # uint8 (n, 1, H, W): make_dataset scales it to [0, 1]


def _idx_pairs(path: Path) -> tuple[dict[str, tuple[Path | None, Path | None]], list[Path]]:
    """{"train": (images, labels), "t10k": (images, labels) or (None, None)} and the files found,
    from a directory or from one images file with its labels file beside it."""
    if path.is_dir():
        directory = idx_directory(path) or path
        found = _find_idx_files(directory)
        pairs = {split: (found.get((split, "images")), found.get((split, "labels"))) for split in ("train", "t10k")}
        for split, (images, labels) in pairs.items():
            if (images is None) != (labels is None):
                missing = f"{split}-{'labels-idx1' if labels is None else 'images-idx3'}-ubyte"
                raise InvalidInputError(
                    f"{directory}: found {(images or labels).name} but not {missing}[.gz] beside it"
                )
        if pairs["train"][0] is None:
            raise InvalidInputError(
                f"{directory}: no train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] in this directory"
            )
        files = [p for pair in pairs.values() for p in pair if p is not None]
    else:
        m = IDX_NAME.match(path.name)
        if m is None:
            raise InvalidInputError(
                f"{path}: cannot find the matching labels file for an IDX file with a non-standard name; "
                "rename the pair to train-images-idx3-ubyte and train-labels-idx1-ubyte"
            )
        split, sep = m.group(1), m.group(3)
        pair = []
        for kind in ("images", "labels"):
            stem = f"{split}-{kind}{sep}idx{_NDIM[kind]}-ubyte"
            candidates = [path.with_name(stem), path.with_name(stem + ".gz")]
            hit = next((c for c in candidates if c.is_file()), None)
            if hit is None:
                raise InvalidInputError(f"{path}: expected {stem}[.gz] beside it")
            pair.append(hit)
        pairs = {"train": tuple(pair), "t10k": (None, None)}
        files = pair
    return pairs, files


def load_idx(path: str | Path) -> Dataset:
    """Load MNIST-style IDX files into (1, H, W) float32 images in [0, 1] and int64 labels.

    ``path`` is a directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte`` and
    optionally ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each may end in ``.gz``;
    '.' before ``idx`` also works; torchvision's ``MNIST/raw/`` is found from ``MNIST/``), or one
    images file whose labels file sits beside it. Without a t10k pair (or given one file), a
    stratified 20% becomes the test split. Classes are the digits "0".."9" (or "0".."K-1" when
    labels go higher): Fashion-MNIST's and KMNIST's names cannot be told from the files.

    Example ids (``id_kind="index"``) are 0-based indices within the official split: into the
    train images file for the pool (and for a held-out test split), into the t10k file for the
    test split; ``id_sources`` names those files.
    """
    path = Path(path)
    pairs, files = _idx_pairs(path)
    x_train, y_train = _read_split(*pairs["train"])
    x_test = y_test = None
    if pairs["t10k"][0] is not None:
        x_test, y_test = _read_split(*pairs["t10k"])
        if x_test.shape[1:] != x_train.shape[1:]:
            raise InvalidInputError(
                f"{path}: test images are {x_test.shape[2]}x{x_test.shape[3]} but train images are "
                f"{x_train.shape[2]}x{x_train.shape[3]}"
            )
    top = int(max(y_train.max(initial=0), -1 if y_test is None else y_test.max(initial=0)))
    classes = tuple(str(i) for i in range(max(10, top + 1)))
    height, width = x_train.shape[2:]
    train_file = pairs["train"][0].name
    test_file = train_file if pairs["t10k"][0] is None else pairs["t10k"][0].name
    ds = make_dataset(path.name, x_train, y_train, x_test, y_test, classes=classes, kind="image",
                      description=f"IDX images ({height}x{width} grayscale, MNIST-style) from {path}",
                      id_sources=(train_file, test_file))
    return ds.with_(
        info={
            "format": "idx",
            "path": str(path),
            "files": [str(p.relative_to(path)) if path.is_dir() else p.name for p in files],
            "test_split": "held out 20%" if y_test is None else "t10k files",
        }
    )
