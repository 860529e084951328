"""CIFAR-10 and CIFAR-100 "python version" archives and their extracted directories.

The batches are pickles, and unpickling runs whatever callables the file names. They are
read with :class:`RestrictedUnpickler`, which resolves only the numpy array
reconstruction globals those files contain and refuses every other global, so a
tampered file cannot execute code. Archives are read member by member with ``tarfile``;
nothing is extracted to disk.
"""

from __future__ import annotations

import codecs
import io
import pickle
import tarfile
from pathlib import Path
from typing import Literal

import numpy as np

from rotelab.data.dataset import Dataset, make_dataset
from rotelab.errors import InvalidInputError
from rotelab.validation import check_choice

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

LABEL_MODES = ("fine", "coarse")

#: Directory name inside the archive -> (train batches, test batch, meta file).
LAYOUTS = {
    "cifar-10-batches-py": ([f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta"),
    "cifar-100-python": (["train"], "test", "meta"),
}

def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 protocol-2 pickles use it for bytes, and nothing else."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode is allowed only for latin1 text, got {encoding!r}")
    return codecs.encode(text, "latin1")


#: (module, name) -> object: everything a CIFAR batch may reference. The official files
#: (Python 2 pickles) use the ``_reconstruct``/``ndarray``/``dtype`` trio; Python 3 protocol 2
#: writes bytes via ``_codecs.encode``, protocol 5 writes arrays via ``_frombuffer``. All of
#: them only build arrays and bytes; none can reach anything else.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`_ALLOWED_GLOBALS`; ``source`` names the file in errors."""

    def __init__(self, file, *, source: str):
        super().__init__(file, encoding="bytes")  # like the official loader: Python 2 str -> bytes
        self.source = source

    def find_class(self, module: str, name: str):
        obj = _ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise InvalidInputError(
                f"{self.source}: refusing to unpickle forbidden global {module}.{name}; a CIFAR batch "
                "holds only numpy arrays, lists and dicts, so this file is not a genuine one"
            )
        return obj


def restricted_loads(data: bytes, *, source: str) -> dict:
    """Unpickle one CIFAR batch (a dict) with :class:`RestrictedUnpickler`; keys become str."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), source=source).load()
    except InvalidInputError:
        raise
    except Exception as exc:  # corrupt pickles raise anything from EOFError to TypeError
        raise InvalidInputError(f"{source}: not a readable CIFAR batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise InvalidInputError(f"{source}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _read_members(path: Path) -> tuple[str, dict[str, dict], str]:
    """Return (layout dir name, {file name: unpickled dict}, prefix for messages)."""
    wanted = {layout: {*train, test, meta} for layout, (train, test, meta) in LAYOUTS.items()}
    batches: dict[str, dict[str, dict]] = {layout: {} for layout in LAYOUTS}
    if path.is_dir():
        base = path
        if path.name not in LAYOUTS:  # the folder that holds the extracted directory
            inner = [path / name for name in LAYOUTS if (path / name).is_dir()]
            if len(inner) > 1:
                raise InvalidInputError(f"{path}: holds both {' and '.join(LAYOUTS)}; give the path of one")
            base = inner[0] if inner else path
        layout = base.name if base.name in LAYOUTS else _guess_layout({p.name for p in base.iterdir()})
        for name in sorted(wanted[layout]):
            file = base / name
            if file.is_file():
                batches[layout][name] = restricted_loads(file.read_bytes(), source=str(file))
        return layout, batches[layout], str(base)
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:  # in stream order: a .tar.gz is never re-read from the start
                parent, _, name = member.name.rstrip("/").rpartition("/")
                layout = parent.rpartition("/")[2]
                if member.isfile() and layout in LAYOUTS and name in wanted[layout]:
                    data = tar.extractfile(member).read()
                    batches[layout][name] = restricted_loads(data, source=f"{path.name}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidInputError(f"{path}: not a readable tar archive ({exc}); download it again") from None
    present = [layout for layout in LAYOUTS if batches[layout]]
    if not present:
        raise InvalidInputError(
            f"{path}: no {' or '.join(d + '/' for d in LAYOUTS)} in this archive; only the CIFAR-10 and "
            "CIFAR-100 python versions are supported"
        )
    return present[0], batches[present[0]], f"{path.name}:{present[0]}"


def _guess_layout(names: set[str]) -> str:
    for layout, (train, test, meta) in LAYOUTS.items():
        if {train[0], meta} <= names:
            return layout
    return next(iter(LAYOUTS))


def _images(batch: dict, source: str) -> np.ndarray:
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        got = f"shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise InvalidInputError(f"{source}: expected 'data' of shape (n, 3072) (3x32x32 pixels), got {got}")
    if data.dtype != np.uint8:
        raise InvalidInputError(f"{source}: expected 'data' of dtype uint8, got {data.dtype}")
    return data.reshape(-1, 3, 32, 32)  # uint8: make_dataset scales it to [0, 1]


def _labels(batch: dict, key: str, n: int, n_classes: int, source: str) -> np.ndarray:
    if key not in batch:
        raise InvalidInputError(f"{source}: no '{key}' entry; found {', '.join(sorted(batch)) or 'none'}")
    try:
        y = np.asarray(batch[key], dtype=np.int64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{source}: '{key}' is not a list of integers") from None
    if y.shape != (n,):
        raise InvalidInputError(f"inconsistent numbers of samples: {source} has {n} images but {y.size} '{key}'")
    if n and (y.min() < 0 or y.max() >= n_classes):
        bad = int(y.min() if y.min() < 0 else y.max())
        raise InvalidInputError(f"{source}: label {bad} out of range for {n_classes} classes (0..{n_classes - 1})")
    return y


def load_cifar(path: str | Path, *, label_mode: Literal["fine", "coarse"] = "fine") -> Dataset:
    """Load CIFAR-10 or CIFAR-100 (python version) as (3, 32, 32) float32 images in [0, 1].

    ``path`` is ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` (read in place, no
    extraction) or the extracted ``cifar-10-batches-py/`` (``data_batch_1``..``5``,
    ``test_batch``, ``batches.meta``) or ``cifar-100-python/`` (``train``, ``test``, ``meta``)
    directory, or the folder holding one of them. ``label_mode`` picks CIFAR-100's 100 fine or
    20 coarse labels (CIFAR-10 has only one kind). The official test batch is the test split.

    Example ids (``id_kind="index"``) are 0-based indices within the official split: into the
    train batches read in order (``data_batch_1``..``5``, so with the official 10000-image
    batches id ``i`` is row ``i % 10000`` of ``data_batch_{i // 10000 + 1}``; CIFAR-100's
    ``train``), and into the test batch.
    """
    path = Path(path)
    check_choice("label_mode", label_mode, LABEL_MODES)
    layout, batches, where = _read_members(path)
    train_names, test_name, meta_name = LAYOUTS[layout]
    missing = [n for n in (*train_names, test_name, meta_name) if n not in batches]
    if missing:
        raise InvalidInputError(f"{where}: missing {', '.join(missing)}; the CIFAR files are incomplete")
    cifar100 = layout == "cifar-100-python"
    key = f"{label_mode}_labels" if cifar100 else "labels"
    names_key = f"{label_mode}_label_names" if cifar100 else "label_names"
    meta = batches[meta_name]
    if not isinstance(meta.get(names_key), list) or not meta[names_key]:
        raise InvalidInputError(f"{where}/{meta_name}: no '{names_key}' list of class names")
    classes = tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in meta[names_key])

    def split(names):
        xs, ys = [], []
        for name in names:
            x = _images(batches[name], f"{where}/{name}")
            xs.append(x)
            ys.append(_labels(batches[name], key, len(x), len(classes), f"{where}/{name}"))
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = split(train_names)
    x_test, y_test = split([test_name])
    title = f"CIFAR-100 ({label_mode} labels)" if cifar100 else "CIFAR-10"
    train_source = train_names[0] if len(train_names) == 1 else f"{train_names[0]}..{train_names[-1][-1]}"
    ds = make_dataset(path.name, x_train, y_train, x_test, y_test, classes=classes, kind="image",
                      description=f"{title}, 32x32 RGB, from {path}", id_sources=(train_source, test_name))
    info = {"format": "cifar-100" if cifar100 else "cifar-10", "path": str(path), "test_split": "test batch"}
    if cifar100:
        info["label_mode"] = label_mode
    return ds.with_(info=info)


def looks_like_cifar_dir(path: Path) -> bool:
    """True for an extracted CIFAR directory, or a folder holding exactly one."""
    if path.name in LAYOUTS or any((path / name).is_dir() for name in LAYOUTS):
        return True
    return any(all((path / f).is_file() for f in (train[0], test, meta)) for train, test, meta in LAYOUTS.values())
