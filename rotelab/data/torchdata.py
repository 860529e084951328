"""Bring a user's tensors, arrays or ``torch.utils.data.Dataset`` into a :class:`Dataset`."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from rotelab.data.dataset import Dataset, make_dataset
from rotelab.errors import InvalidInputError


def _to_numpy(a: Any) -> np.ndarray:
    """A tensor, array or PIL image as an array; a PIL image becomes float32 (C, H, W) in [0, 1]
    (``np.asarray`` would give (H, W, C) 0..255, read as H channels of W x C)."""
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    pil = sys.modules.get("PIL.Image")  # not imported: a cannot be a PIL image
    if pil is not None and isinstance(a, pil.Image):
        from rotelab.data.imagefolder import image_array

        return image_array(a)
    return np.asarray(a)


def from_torch_dataset(dataset: Any, *, name: str = "torch-dataset") -> tuple[np.ndarray, np.ndarray]:
    """Read every (x, y) item of a map-style torch Dataset into arrays (N, *shape) and (N,).

    rotelab keeps all examples on the device and trains K models on them at once, so the data
    is read once up front; transforms inside the Dataset are applied once, not per epoch (use
    rotelab's ``augment`` technique for per-epoch augmentation). PIL images are read as float32
    (C, H, W) in [0, 1], as in an image folder; uint8 tensors and arrays stay uint8 here and are
    scaled to [0, 1] by :func:`~rotelab.data.make_dataset`.
    """
    try:
        n = len(dataset)
    except TypeError:
        raise InvalidInputError(f"{name}: needs a map-style Dataset with len(); got {type(dataset).__name__}") from None
    if n == 0:
        raise InvalidInputError(f"{name}: the Dataset is empty")
    xs, ys = [], []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise InvalidInputError(f"{name}: item {i} must be an (x, y) pair, got {type(item).__name__}")
        try:
            x, y = _to_numpy(item[0]), _to_numpy(item[1])
        except InvalidInputError as exc:
            raise InvalidInputError(f"{name}: item {i}: {exc}") from None
        if xs and x.shape != xs[0].shape:
            raise InvalidInputError(f"{name}: item {i} has shape {x.shape} but item 0 has {xs[0].shape}")
        xs.append(x)
        ys.append(y.reshape(()) if y.size == 1 else y)
    return np.stack(xs), np.asarray(ys)


def from_user_data(data: Any, *, classes=None, kind: str | None = None) -> Dataset:
    """``(x, y)``, ``(x, y, x_test, y_test)`` of arrays/tensors, or a torch Dataset (or a
    ``(train_dataset, test_dataset)`` pair of them) -> validated :class:`Dataset`.

    Example ids are indices into what the user passed: ``x`` and ``x_test``, or ``dataset[i]``.
    Without a test split, a stratified 20% of ``x`` (or of the Dataset) is held out, seeded, and
    its ids still index ``x`` (``id_sources == ("x", "x")``)."""
    import torch.utils.data as tud

    if isinstance(data, tud.Dataset):
        x, y = from_torch_dataset(data)
        return make_dataset("torch-dataset", x, y, classes=classes, kind=kind, id_sources=("dataset", "dataset"))
    if isinstance(data, (tuple, list)):
        if len(data) == 2 and all(isinstance(d, tud.Dataset) for d in data):
            (x, y), (xt, yt) = from_torch_dataset(data[0], name="train dataset"), from_torch_dataset(data[1], name="test dataset")
            return make_dataset("torch-dataset", x, y, xt, yt, classes=classes, kind=kind,
                                id_sources=("train dataset", "test dataset"))
        if len(data) in (2, 4):
            arrays = [_to_numpy(a) for a in data]
            return make_dataset("arrays", *arrays, classes=classes, kind=kind)
    raise InvalidInputError(
        "data must be a built-in name, a dataset file, (x, y) or (x, y, x_test, y_test) arrays, or a torch Dataset; "
        f"got {type(data).__name__}"
    )
