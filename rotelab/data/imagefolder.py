"""A folder of images with one subfolder per class (the torchvision ImageFolder layout), via Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rotelab.data.dataset import Dataset, make_dataset
from rotelab.errors import InvalidInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
_GRAY_BANDS = {("1",), ("L",), ("L", "A"), ("I",), ("F",)}


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_by_class(root: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(file, label) for every image under ``root/<class>/`` (recursively), in sorted order."""
    items = []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        items += [
            (f, label)
            for f in sorted(folder.rglob("*"))
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not f.name.startswith(".")
        ]
    return items


def _read_headers(items: list[tuple[Path, int]]) -> tuple[tuple[int, int], bool]:
    """Check every image opens and all share one size; return ((width, height), all grayscale)."""
    from PIL import Image

    first = size = None
    gray = True
    for f, _ in items:
        try:
            with Image.open(f) as im:
                this, bands = im.size, im.getbands()
        except Exception as exc:  # Pillow raises OSError, SyntaxError, DecompressionBombError, ...
            raise InvalidInputError(f"{f}: cannot read the image ({exc}); remove or replace the file") from None
        if size is None:
            first, size = f, this
        elif this != size:
            raise InvalidInputError(
                f"images differ in size: {first} is {size[0]}x{size[1]} but {f} is {this[0]}x{this[1]} "
                "(width x height); resize them all to one size first"
            )
        gray = gray and bands in _GRAY_BANDS
    return size, gray


def image_array(im, mode: str | None = None) -> np.ndarray:
    """A PIL image as float32 (C, H, W) in [0, 1]: the one reading of a PIL image, shared by image
    folders and torch Datasets, so the same picture gives the same array either way.

    ``mode`` "L" gives (1, H, W), "RGB" (3, H, W); left out, "L" for grayscale bands ("1", "L",
    "LA", ...) and "RGB" for the rest (palette and alpha images included). 8-bit values are
    divided by 255, 16-bit grayscale by 65535 (``convert`` would clip it at 255); 32-bit "I" and
    "F" images have no known range and are refused (message without the source: callers add it).
    """
    mode = mode or ("L" if im.getbands() in _GRAY_BANDS else "RGB")
    if im.mode in ("I", "F"):
        raise InvalidInputError(
            f"32-bit {'float' if im.mode == 'F' else 'integer'} images are not supported "
            "(no known value range); save it as 8- or 16-bit"
        )
    if im.mode.startswith("I;16"):  # 16-bit grayscale: convert() would clip at 255
        arr = np.asarray(im, dtype=np.float32) * (255.0 / 65535.0)
        arr = arr if mode == "L" else np.repeat(arr[..., None], 3, axis=2)
    else:
        arr = np.asarray(im.convert(mode), dtype=np.float32)
    return (arr[None] if mode == "L" else arr.transpose(2, 0, 1)) / 255.0


def _read_images(items: list[tuple[Path, int]], mode: str, size: tuple[int, int]):
    from PIL import Image

    n_channels = 1 if mode == "L" else 3
    x = np.empty((len(items), n_channels, size[1], size[0]), dtype=np.float32)
    for i, (f, _) in enumerate(items):
        try:
            with Image.open(f) as im:
                x[i] = image_array(im, mode)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{f}: {exc}") from None
        except Exception as exc:  # a truncated file opens (header only) but fails to decode
            raise InvalidInputError(f"{f}: cannot read the image ({exc}); remove or replace the file") from None
    return x, np.array([label for _, label in items], dtype=np.int64)


def _relative(items: list[tuple[Path, int]], root: Path) -> np.ndarray:
    """Str (n,): each file's path relative to ``root``, with ``/`` separators on every system."""
    return np.array([f.relative_to(root).as_posix() for f, _ in items], dtype=str)


def _find_images(path: Path) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(class names, train (file, label) items, test items: empty unless ``train/`` and ``test/``)."""
    if not path.is_dir():
        raise InvalidInputError(f"{path}: an image folder must be a directory")
    top = {p.name: p for p in _subdirs(path)}
    split = "train" in top and "test" in top
    if ("train" in top or "test" in top) and not split:
        have, lack = ("train", "test") if "train" in top else ("test", "train")
        raise InvalidInputError(
            f"{path}: has {have}/ but no {lack}/; add {lack}/ with the same class folders, "
            f"or put the class folders directly in {path}"
        )
    root = top["train"] if split else path
    classes = [p.name for p in _subdirs(root)]
    if not classes:
        raise InvalidInputError(
            f"{root}: no class subfolders; expected one subfolder per class holding its images"
        )
    if len(classes) == 1:
        raise InvalidInputError(
            f"{root}: found only one class folder ({classes[0]!r}); need at least 2, one subfolder per class"
        )
    if split:
        extra = sorted({p.name for p in _subdirs(top["test"])} - set(classes))
        if extra:
            raise InvalidInputError(f"{top['test']}: class folder(s) {', '.join(extra)} are not in {root}")
    train = _images_by_class(root, classes)
    test = _images_by_class(top["test"], classes) if split else []
    if not train:
        raise InvalidInputError(
            f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders {', '.join(classes)}"
        )
    empty = sorted(set(classes) - {classes[label] for _, label in train})
    if empty:
        raise InvalidInputError(
            f"{root}: class folder(s) {', '.join(empty)} hold no images; add images or remove them"
        )
    if split and not test:
        raise InvalidInputError(f"{top['test']}: no images in the class folders")
    return classes, train, test


def load_image_folder(path: str | Path) -> Dataset:
    """Load ``path/<class>/<image>`` (or ``path/train/<class>/…`` and ``path/test/<class>/…``).

    Class names are the sorted subfolder names (those of ``train/`` in the split layout).
    Images are converted to grayscale "L" when all are grayscale, else "RGB", and returned as
    float32 (C, H, W) in [0, 1] (16-bit grayscale is scaled by 65535); all must have one size.
    Without train/ and test/, a stratified 20% becomes the test split.

    Example ids (``id_kind="path"``) are the image paths relative to ``path`` with ``/``
    separators: ``cat/0.png``, or ``train/cat/0.png`` and ``test/cat/0.png`` in the split layout.
    """
    path = Path(path)
    classes, train, test = _find_images(path)
    split = bool(test)
    size, gray = _read_headers(train + test)
    mode = "L" if gray else "RGB"
    x_train, y_train = _read_images(train, mode, size)
    x_test, y_test = _read_images(test, mode, size) if split else (None, None)
    look = f"{size[0]}x{size[1]} {'grayscale' if gray else 'RGB'}, {len(classes)} classes"
    ds = make_dataset(path.name, x_train, y_train, x_test, y_test, classes=classes, kind="image",
                      description=f"image folder, {look}, from {path}", train_ids=_relative(train, path),
                      test_ids=_relative(test, path) if split else None, id_kind="path",
                      id_sources=(str(path), str(path)))
    return ds.with_(info={"format": "imagefolder", "path": str(path), "mode": mode,
                          "test_split": "test/ folder" if split else "held out 20%"})
