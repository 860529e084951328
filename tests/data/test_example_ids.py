"""Example ids: for every format, the id of each example leads back to that example in the
user's own source (same label, same features), also after a subset and label noise."""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from rotelab.data import Dataset, flip_labels, load_dataset, make_dataset, stratified_subset
from rotelab.data.builtin import digits, synthetic
from rotelab.data.files import load_file
from rotelab.errors import InvalidInputError

#: (source name, ids (n,)) -> (features (n, ...) as the dataset holds them, label names (n,))
Source = Callable[[str, np.ndarray], tuple[np.ndarray, list[str]]]


# ── the check every format goes through ────────────────────────────────────────────────
def _points_back(ds: Dataset, source: Source) -> None:
    """Each example's clean label and features equal those at its id in the user's source."""
    splits = ((ds.train_ids, ds.id_sources[0], ds.x_train, ds.clean_labels),
              (ds.test_ids, ds.id_sources[1], ds.x_test, ds.y_test))
    for ids, name, x, y in splits:
        src_x, src_labels = source(name, ids)
        assert [ds.classes[c] for c in y] == [str(v) for v in src_labels]
        np.testing.assert_allclose(x.reshape(len(x), -1), np.asarray(src_x, np.float32).reshape(len(x), -1),
                                   rtol=1e-6, atol=1e-7)


def _check_everywhere(ds: Dataset, source: Source, *, id_kind: str) -> None:
    """The loaded dataset, a stratified subset of it, and label noise on that subset."""
    assert ds.id_kind == id_kind and ds.summary()["id_kind"] == id_kind
    _points_back(ds, source)
    sub = stratified_subset(ds, ds.n_train // 2, seed=1)
    assert sub.n_train == ds.n_train // 2 and not np.array_equal(sub.train_ids, ds.train_ids[: sub.n_train])
    _points_back(sub, source)
    noisy = flip_labels(sub, 0.3, seed=2)
    assert noisy.noisy_mask.sum() == round(0.3 * sub.n_train)
    _points_back(noisy, source)  # the clean label is still the user's label at that id
    flipped = noisy.train_ids[noisy.noisy_mask]
    _, src_labels = source(noisy.id_sources[0], flipped)
    given = [noisy.classes[c] for c in noisy.y_train[noisy.noisy_mask]]
    assert all(g != str(s) for g, s in zip(given, src_labels))  # the given label is the flipped one
    assert ds.with_(train_ids=ds.train_ids[::-1].copy()).fingerprint() == ds.fingerprint()


# ── image folder ───────────────────────────────────────────────────────────────────────
def _write_images(root, classes=("cat", "dog"), n=5, offset=0):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            value = offset + 20 * c + 2 * i  # pixel value names the image
            Image.new("L", (4, 3), value).save(root / name / f"img{i}.png")


def _image_source(root) -> Source:
    def source(name, ids):
        assert name == str(root)
        x = np.stack([np.asarray(Image.open(root / rel), np.float32)[None] / 255.0 for rel in ids])
        return x, [rel.split("/")[-2] for rel in ids]  # the class folder the file sits in
    return source


def test_image_folder_ids_are_relative_paths(tmp_path):
    root = tmp_path / "pets"
    _write_images(root)
    ds = load_file(root)
    assert ds.train_ids.dtype.kind == "U" and set(ds.all_ids()) == {f"{c}/img{i}.png" for c in ("cat", "dog")
                                                                    for i in range(5)}
    assert ds.summary()["ids"] == f"file path relative to {root}"
    _check_everywhere(ds, _image_source(root), id_kind="path")


def test_image_folder_train_test_ids_name_the_split_folder(tmp_path):
    root = tmp_path / "data"
    _write_images(root / "train", n=4)
    _write_images(root / "test", n=2, offset=100)
    ds = load_file(root)
    assert all(i.startswith("train/") for i in ds.train_ids) and all(i.startswith("test/") for i in ds.test_ids)
    assert list(ds.test_ids) == ["test/cat/img0.png", "test/cat/img1.png", "test/dog/img0.png", "test/dog/img1.png"]
    _check_everywhere(ds, _image_source(root), id_kind="path")


# ── CSV ────────────────────────────────────────────────────────────────────────────────
def test_csv_ids_are_pandas_rows(tmp_path):
    path = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": np.arange(40) * 1.5, "target": ["no", "yes"] * 20})
    frame.to_csv(path, index=False)
    ds = load_file(path, label_column="target")
    assert ds.id_sources == (str(path), str(path)) and "row 0 = the first line after the header" in ds.summary()["ids"]
    assert sorted(ds.all_ids()) == list(range(40))

    def source(name, ids):
        table = pd.read_csv(name)  # how a pandas user looks a row up
        return table.iloc[ids][["a", "b"]].to_numpy(), table.iloc[ids]["target"].tolist()

    _check_everywhere(ds, source, id_kind="row")
    line = path.read_text().splitlines()[int(ds.test_ids[0]) + 2 - 1]  # 1-based file line id + 2
    assert line.endswith("," + ds.classes[ds.y_test[0]])


# ── .npz ───────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("with_test", [False, True])
def test_npz_ids_index_x_and_x_test(tmp_path, with_test):
    rng = np.random.default_rng(1)
    arrays = {"x": rng.normal(size=(30, 3)), "y": np.arange(30) % 3}
    if with_test:
        arrays |= {"x_test": rng.normal(size=(9, 3)), "y_test": np.arange(9) % 3}
    np.savez(tmp_path / "d.npz", **arrays)
    ds = load_file(tmp_path / "d.npz")
    assert ds.id_sources == (("x", "x_test") if with_test else ("x", "x"))

    def source(name, ids):
        with np.load(tmp_path / "d.npz") as f:
            return f[name][ids], f["y" if name == "x" else "y_test"][ids]

    _check_everywhere(ds, source, id_kind="index")


# ── IDX ────────────────────────────────────────────────────────────────────────────────
def _write_idx_pair(directory, split, n, rng):
    x = rng.integers(0, 256, size=(n, 4, 4), dtype=np.uint8)
    x[:, 0, 0] = np.arange(n)
    y = (np.arange(n) * 7 % 10).astype(np.uint8)
    for kind, arr in (("images", x), ("labels", y)):
        head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
        (directory / f"{split}-{kind}-idx{arr.ndim}-ubyte.gz").write_bytes(gzip.compress(head + arr.tobytes()))
    return x, y


@pytest.mark.parametrize("with_t10k", [False, True])
def test_idx_ids_index_the_official_split(tmp_path, with_t10k):
    rng = np.random.default_rng(2)
    files = {"train-images-idx3-ubyte.gz": _write_idx_pair(tmp_path, "train", 60, rng)}
    if with_t10k:
        files["t10k-images-idx3-ubyte.gz"] = _write_idx_pair(tmp_path, "t10k", 20, rng)
    ds = load_file(tmp_path)
    assert ds.id_sources[1] == ("t10k-images-idx3-ubyte.gz" if with_t10k else "train-images-idx3-ubyte.gz")

    def source(name, ids):
        x, y = files[name]
        return x[ids][:, None] / 255.0, y[ids]

    _check_everywhere(ds, source, id_kind="index")


# ── CIFAR ──────────────────────────────────────────────────────────────────────────────
def test_cifar10_ids_index_the_train_batches_in_order(tmp_path):
    rng = np.random.default_rng(3)
    directory = tmp_path / "cifar-10-batches-py"
    directory.mkdir()
    names = [f"class{i}" for i in range(10)]
    batches = {}
    for b, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, size=(6, 3072), dtype=np.uint8)
        labels = [(6 * b + j) % 10 for j in range(6)]  # 3 of each class over the 5 train batches
        batches[name] = (data, labels)
        (directory / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=2))
    meta = {b"label_names": [n.encode() for n in names]}
    (directory / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    ds = load_file(directory)
    assert ds.id_sources == ("data_batch_1..5", "test_batch") and ds.n_train == 30

    def source(name, ids):
        parts = [batches[f"data_batch_{i}"] for i in range(1, 6)] if name == "data_batch_1..5" else [batches[name]]
        data = np.concatenate([d for d, _ in parts])  # the official order: batch 1, then 2, ...
        labels = np.concatenate([lab for _, lab in parts])
        return data[ids].reshape(-1, 3, 32, 32) / 255.0, [names[i] for i in labels[ids]]

    _check_everywhere(ds, source, id_kind="index")


# ── Python arrays and torch Datasets ───────────────────────────────────────────────────
def _array_source(arrays: dict) -> Source:
    def source(name, ids):
        x, y = arrays[name]
        return x[ids], np.asarray(y)[ids]
    return source


@pytest.mark.parametrize("with_test", [False, True])
def test_python_arrays_ids_index_the_users_arrays(with_test):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(50, 6)), np.arange(50) % 5
    xt, yt = rng.normal(size=(15, 6)), np.arange(15) % 5
    ds = load_dataset((x, y, xt, yt) if with_test else (torch.tensor(x), torch.tensor(y)))
    assert ds.id_sources == (("x", "x_test") if with_test else ("x", "x"))
    if not with_test:  # the held-out part maps back into the user's x
        assert ds.n_test == 10 and set(ds.all_ids()) == set(range(50))
    _check_everywhere(ds, _array_source({"x": (x, y), "x_test": (xt, yt)}), id_kind="index")


@pytest.mark.parametrize("pair", [False, True])
def test_torch_dataset_ids_index_the_users_dataset(pair):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(40, 2, 5)).astype(np.float32), np.arange(40) % 4
    train = torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y))
    test = torch.utils.data.TensorDataset(torch.tensor(x[:12] + 1), torch.tensor(y[:12]))
    ds = load_dataset((train, test) if pair else train)
    assert ds.id_sources == (("train dataset", "test dataset") if pair else ("dataset", "dataset"))

    def source(name, ids):
        items = [(train if name in ("dataset", "train dataset") else test)[int(i)] for i in ids]
        return torch.stack([a for a, _ in items]).numpy(), [int(b) for _, b in items]

    _check_everywhere(ds, source, id_kind="index")


# ── built-in datasets ──────────────────────────────────────────────────────────────────
def test_digits_ids_index_load_digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    ds = digits()
    assert ds.id_sources == ("load_digits()", "load_digits()") and sorted(ds.all_ids()) == list(range(1797))
    source = _array_source({"load_digits()": (bunch.images[:, None] / 16.0, bunch.target)})
    _check_everywhere(ds, source, id_kind="index")


def test_synthetic_ids_are_generation_order():
    small = synthetic(n_train=40, n_test=20)
    np.testing.assert_array_equal(small.all_ids(), np.arange(60))
    x = np.concatenate([small.x_train, small.x_test])
    y = np.concatenate([small.y_train, small.y_test])
    source = _array_source({"the generated examples": (x, [small.classes[c] for c in y])})
    _check_everywhere(small, source, id_kind="index")


def test_mnist1d_ids_index_its_generated_splits():
    ds = load_dataset("mnist1d")
    np.testing.assert_array_equal(ds.train_ids, np.arange(4000))
    np.testing.assert_array_equal(ds.test_ids, np.arange(1000))
    assert ds.id_sources == ("mnist1d x", "mnist1d x_test")


# ── the helpers and their errors ───────────────────────────────────────────────────────
def test_ids_of_all_ids_and_sources():
    ds = make_dataset("a", np.arange(20.0)[:, None], np.arange(20) % 2, np.zeros((4, 1)), np.arange(4) % 2,
                      train_ids=np.arange(100, 120))
    np.testing.assert_array_equal(ds.ids_of([2, 0]), [102, 100])
    np.testing.assert_array_equal(ds.ids_of(np.arange(20) < 2), [100, 101])
    np.testing.assert_array_equal(ds.ids_of([3], split="test"), [3])
    np.testing.assert_array_equal(ds.all_ids(), np.r_[100:120, 0:4])
    assert ds.all_id_sources().tolist() == ["x"] * 20 + ["x_test"] * 4
    assert ds.summary()["ids"] == "0-based index into x (train pool) and x_test (test split)"
    with pytest.raises(InvalidInputError, match="a: train indices out of range for 20 examples"):
        ds.ids_of([20])
    with pytest.raises(InvalidInputError, match="unknown split 'val': expected one of train, test"):
        ds.ids_of([0], split="val")


def test_a_dataset_built_directly_gets_position_ids():
    ds = Dataset("d", np.zeros((3, 2), np.float32), np.array([0, 1, 0]), np.zeros((2, 2), np.float32),
                 np.array([1, 0]), ("a", "b"), "vector")
    np.testing.assert_array_equal(ds.all_ids(), [0, 1, 2, 0, 1])
    assert ds.id_sources == ("x_train", "x_test") and ds.train_ids.dtype == np.int64


@pytest.mark.parametrize("changes,match", [
    ({"train_ids": np.arange(5)}, r"d: train_ids must have shape \(6,\), one per example, got \(5,\)"),
    ({"train_ids": np.array([0, 1, 2, 3, 4, 4])}, "d: train_ids repeat an id"),
    ({"train_ids": np.array(list("abcdef"))}, "d: train_ids of kind 'index' must be non-negative integers, got dtype <U1"),
    ({"train_ids": np.arange(-1, 5)}, "must be non-negative integers, got dtype int64 with minimum -1"),
    ({"train_ids": np.arange(6), "id_kind": "path"}, "d: train_ids of kind 'path' must be strings, got dtype int64"),
    ({"id_kind": "uuid"}, "d: unknown id_kind 'uuid': expected one of index, row, path"),
    ({"id_sources": ("x",)}, r"d: id_sources must be two names \(train ids, test ids\)"),
    ({"id_sources": ("x", "x")}, "d: id 0 is both a train and a test id of x; give id_sources two names"),
])
def test_bad_ids_are_refused(changes, match):
    ds = make_dataset("d", np.arange(6.0)[:, None], np.arange(6) % 2, np.zeros((2, 1)), np.array([0, 1]))
    with pytest.raises(InvalidInputError, match=match):
        ds.with_(**changes)


def test_make_dataset_id_errors():
    x, y = np.arange(10.0)[:, None], np.arange(10) % 2
    with pytest.raises(InvalidInputError, match=r"m: train_ids must have shape \(10,\), got \(9,\)"):
        make_dataset("m", x, y, train_ids=np.arange(9))
    with pytest.raises(InvalidInputError, match="m: test_ids given without x_test; give x_test and y_test too"):
        make_dataset("m", x, y, test_ids=np.arange(2))
