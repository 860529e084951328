"""File loaders: tiny files in every format, written here, loaded back; every error branch."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
from PIL import Image

from rotelab.data import load_dataset
from rotelab.data.files import FORMATS, detect_format, load_file
from rotelab.errors import InvalidInputError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _tree(root):
    return sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("*"))


# ── IDX ────────────────────────────────────────────────────────────────────────────────
def _idx_bytes(arr: np.ndarray, *, magic: bytes | None = None) -> bytes:
    head = magic if magic is not None else bytes([0, 0, 0x08, arr.ndim])
    return head + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def _write_idx(path, arr, **kw):
    data = _idx_bytes(arr, **kw)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def _mnist_split(rng, n):
    y = np.arange(n) % 10
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    x[:, 0, 0] = np.arange(n)  # pixel (0, 0) = row index, to check images stay with labels
    return x, y.astype(np.uint8)


def _write_mnist(directory, rng, *, gz=False, sep="-", test=True, n_train=20, n_test=10):
    directory.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {"train": _mnist_split(rng, n_train), "t10k": _mnist_split(rng, n_test)}
    for split, (x, y) in arrays.items():
        if split == "t10k" and not test:
            continue
        _write_idx(directory / f"{split}-images{sep}idx3-ubyte{ext}", x)
        _write_idx(directory / f"{split}-labels{sep}idx1-ubyte{ext}", y)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("sep", ["-", "."])
def test_idx_directory(tmp_path, rng, gz, sep):
    arrays = _write_mnist(tmp_path / "mnist", rng, gz=gz, sep=sep)
    assert detect_format(tmp_path / "mnist") == "idx"
    ds = load_file(tmp_path / "mnist")
    (x_tr, y_tr), (x_te, y_te) = arrays["train"], arrays["t10k"]
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    np.testing.assert_allclose(ds.x_train[:, 0], x_tr / 255.0, rtol=1e-6)
    np.testing.assert_allclose(ds.x_test[:, 0], x_te / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, y_tr)
    np.testing.assert_array_equal(ds.y_test, y_te)
    assert ds.classes == tuple("0123456789") and ds.kind == "image"
    assert ds.info["format"] == "idx" and ds.info["test_split"] == "t10k files"
    assert "28x28" in ds.description


@pytest.mark.parametrize("gz", [False, True])
def test_idx_single_images_file_holds_out_20_percent(tmp_path, rng, gz):
    _write_mnist(tmp_path, rng, gz=gz, test=False, n_train=50)
    path = tmp_path / f"train-images-idx3-ubyte{'.gz' if gz else ''}"
    assert detect_format(path) == "idx"
    ds = load_file(path)
    assert (ds.n_train, ds.n_test) == (40, 10)
    assert np.bincount(ds.y_test).tolist() == [1] * 10  # stratified
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        row = np.round(x[:, 0, 0, 0] * 255).astype(int)
        np.testing.assert_array_equal(row % 10, y)  # each image kept its label
    assert ds.info["test_split"] == "held out 20%"


def test_idx_directory_without_t10k_holds_out(tmp_path, rng):
    _write_mnist(tmp_path, rng, test=False, n_train=50)
    ds = load_file(tmp_path)
    assert (ds.n_train, ds.n_test) == (40, 10)


def test_idx_sniffed_by_magic_number_but_unpaired(tmp_path, rng):
    path = _write_idx(tmp_path / "images.bin", rng.integers(0, 255, (3, 4, 4)))
    assert detect_format(path) == "idx"
    with pytest.raises(InvalidInputError, match=r"images\.bin: cannot find the matching labels file"):
        load_file(path)


def test_idx_truncated(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(InvalidInputError, match=r"train-images-idx3-ubyte: IDX file is truncated.*15680 data bytes.*15675"):
        load_file(tmp_path)


def test_idx_truncated_gzip(tmp_path, rng):
    _write_mnist(tmp_path, rng, gz=True)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(InvalidInputError, match=r"t10k-labels-idx1-ubyte\.gz: cannot read the file"):
        load_file(tmp_path)


def test_idx_truncated_header(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0]))
    with pytest.raises(InvalidInputError, match="truncated IDX header"):
        load_file(tmp_path)


def test_idx_trailing_bytes(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(InvalidInputError, match="longer than its header says"):
        load_file(tmp_path)


def test_idx_wrong_magic_number(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    _write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 255, (20, 28, 28)), magic=b"\x12\x34\x08\x03")
    with pytest.raises(InvalidInputError, match=r"train-images-idx3-ubyte: not an IDX file: magic number 0x12340803"):
        load_file(tmp_path)


def test_idx_wrong_dtype_code(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(20), magic=b"\x00\x00\x0d\x01")
    with pytest.raises(InvalidInputError, match=r"dtype code 0x0D \(float32\) is not supported; expected 0x08"):
        load_file(tmp_path)


def test_idx_wrong_ndim(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((20, 2)))
    with pytest.raises(InvalidInputError, match=r"expected an IDX file with 1 dimension\(s\), got 2"):
        load_file(tmp_path)


def test_idx_count_mismatch(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(19))
    with pytest.raises(InvalidInputError, match="inconsistent numbers of samples: .* 20 images but .* 19 labels"):
        load_file(tmp_path)


def test_idx_missing_partner_files(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(InvalidInputError, match="found t10k-images-idx3-ubyte but not t10k-labels-idx1-ubyte"):
        load_file(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(InvalidInputError, match=r"expected train-labels-idx1-ubyte\[\.gz\] beside it"):
        load_file(tmp_path / "train-images-idx3-ubyte")


def test_idx_directory_without_train(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / name).unlink()
    with pytest.raises(InvalidInputError, match="no train-images-idx3-ubyte"):
        load_file(tmp_path)


# ── CIFAR ──────────────────────────────────────────────────────────────────────────────
def _cifar_rows(rng, n, n_classes):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return data, [int(i % n_classes) for i in range(n)]


def _write_cifar10(directory, rng, *, protocol=2, per_batch=4, n_test=10):
    """Like the official files: dicts with bytes keys, uint8 (n, 3072) rows, lists of labels."""
    directory.mkdir(parents=True, exist_ok=True)
    train_x, train_y = [], []
    for i in range(1, 6):
        data, labels = _cifar_rows(rng, per_batch, 10)
        batch = {b"batch_label": f"training batch {i} of 5".encode(), b"data": data, b"labels": labels}
        (directory / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=protocol))
        train_x.append(data)
        train_y += labels
    data, labels = _cifar_rows(rng, n_test, 10)
    (directory / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=protocol))
    meta = {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": per_batch}
    (directory / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    (directory / "readme.html").write_text("<html></html>")
    return np.concatenate(train_x), np.array(train_y), data, np.array(labels)


def _write_cifar100(directory, rng, *, n_train=200, n_test=100):
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data, fine = _cifar_rows(rng, n, 100)
        coarse = [f // 5 for f in fine]
        batch = {b"filenames": [b"x.png"] * n, b"fine_labels": fine, b"coarse_labels": coarse, b"data": data}
        (directory / name).write_bytes(pickle.dumps(batch, protocol=2))
        out[name] = (data, np.array(fine), np.array(coarse))
    meta = {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    }
    (directory / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return out


def _tar(directory, archive):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory, arcname=directory.name)
    return archive


def _check_cifar10(ds, arrays):
    x_tr, y_tr, x_te, y_te = arrays
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_allclose(ds.x_train, x_tr.reshape(-1, 3, 32, 32) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(ds.x_test, x_te.reshape(-1, 3, 32, 32) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, y_tr)
    np.testing.assert_array_equal(ds.y_test, y_te)
    assert ds.classes == tuple(CIFAR10_NAMES) and ds.kind == "image"
    assert ds.info["format"] == "cifar-10"


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_directory(tmp_path, rng, protocol):
    arrays = _write_cifar10(tmp_path / "cifar-10-batches-py", rng, protocol=protocol)
    for path in (tmp_path / "cifar-10-batches-py", tmp_path):  # the folder itself or the one holding it
        assert detect_format(path) == "cifar"
        _check_cifar10(load_file(path), arrays)


def test_cifar10_tar_gz_read_in_place(tmp_path, rng):
    arrays = _write_cifar10(tmp_path / "src" / "cifar-10-batches-py", rng)
    archive = _tar(tmp_path / "src" / "cifar-10-batches-py", tmp_path / "cifar-10-python.tar.gz")
    before = _tree(tmp_path)
    assert detect_format(archive) == "cifar"
    ds = load_file(archive)
    _check_cifar10(ds, arrays)
    assert _tree(tmp_path) == before  # nothing extracted or written
    assert "CIFAR-10" in ds.description


def test_cifar100_fine_and_coarse(tmp_path, rng):
    out = _write_cifar100(tmp_path / "cifar-100-python", rng)
    ds = load_file(tmp_path / "cifar-100-python")
    assert ds.x_train.shape == (200, 3, 32, 32) and ds.x_test.shape == (100, 3, 32, 32)
    assert ds.classes == tuple(f"fine{i}" for i in range(100))
    np.testing.assert_array_equal(ds.y_train, out["train"][1])
    np.testing.assert_allclose(ds.x_test, out["test"][0].reshape(-1, 3, 32, 32) / 255.0, rtol=1e-6)
    assert ds.info == {"format": "cifar-100", "path": str(tmp_path / "cifar-100-python"),
                       "test_split": "test batch", "label_mode": "fine"}
    coarse = load_file(tmp_path / "cifar-100-python", label_mode="coarse")
    assert coarse.classes == tuple(f"coarse{i}" for i in range(20))
    np.testing.assert_array_equal(coarse.y_test, out["test"][2])
    with pytest.raises(InvalidInputError, match="unknown label_mode 'medium': expected one of fine, coarse"):
        load_file(tmp_path / "cifar-100-python", label_mode="medium")


def test_cifar100_tar_gz(tmp_path, rng):
    out = _write_cifar100(tmp_path / "src" / "cifar-100-python", rng)
    ds = load_file(_tar(tmp_path / "src" / "cifar-100-python", tmp_path / "cifar-100-python.tar.gz"))
    np.testing.assert_array_equal(ds.y_test, out["test"][1])
    assert ds.n_classes == 100


class _Evil:
    """Unpickling this with the standard unpickler would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("packed", [False, True])
def test_cifar_refuses_forbidden_global(tmp_path, rng, packed):
    directory = tmp_path / "src" / "cifar-10-batches-py"
    _write_cifar10(directory, rng)
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2)
    assert b"system" in payload
    (directory / "data_batch_1").write_bytes(payload)
    path = _tar(directory, tmp_path / "cifar-10-python.tar.gz") if packed else directory
    with pytest.raises(
        InvalidInputError,
        match=r"cifar-10-batches-py/data_batch_1: refusing to unpickle forbidden global (posix|os|nt)\.system",
    ):
        load_file(path)
    assert not marker.exists()


def test_cifar_refuses_builtins_eval(tmp_path, rng):
    directory = tmp_path / "cifar-10-batches-py"
    _write_cifar10(directory, rng)
    # GLOBAL builtins.eval, a string, TUPLE1, REDUCE: what a hand-crafted exploit looks like
    (directory / "test_batch").write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(InvalidInputError, match=r"test_batch: refusing to unpickle forbidden global builtins\.eval"):
        load_file(directory)


def test_cifar_corrupt_pickle(tmp_path, rng):
    directory = tmp_path / "cifar-10-batches-py"
    _write_cifar10(directory, rng)
    (directory / "batches.meta").write_bytes(b"\x80\x02}q\x00(X")
    with pytest.raises(InvalidInputError, match=r"batches\.meta: not a readable CIFAR batch"):
        load_file(directory)
    (directory / "batches.meta").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(InvalidInputError, match=r"batches\.meta: expected a pickled dict, got list"):
        load_file(directory)


def test_cifar_wrong_row_size(tmp_path, rng):
    directory = tmp_path / "cifar-10-batches-py"
    _write_cifar10(directory, rng)
    bad = {b"data": np.zeros((4, 3000), np.uint8), b"labels": [0, 1, 2, 3]}
    (directory / "data_batch_3").write_bytes(pickle.dumps(bad, protocol=2))
    match = r"data_batch_3: expected 'data' of shape \(n, 3072\).*got shape \(4, 3000\)"
    with pytest.raises(InvalidInputError, match=match):
        load_file(directory)


@pytest.mark.parametrize(("batch", "labels", "match"), [
    ("data_batch_2", [0, 10], r"data_batch_2: label 10 out of range for 10 classes"),
    ("test_batch", [0], r"test_batch has 2 images but 1 'labels'"),
])
def test_cifar_bad_labels(tmp_path, rng, batch, labels, match):
    directory = tmp_path / "cifar-10-batches-py"
    _write_cifar10(directory, rng)
    bad = {b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}
    (directory / batch).write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(InvalidInputError, match=match):
        load_file(directory)


def test_cifar_missing_batch(tmp_path, rng):
    directory = tmp_path / "cifar-10-batches-py"
    _write_cifar10(directory, rng)
    (directory / "data_batch_5").unlink()
    with pytest.raises(InvalidInputError, match="missing data_batch_5; the CIFAR files are incomplete"):
        load_file(directory)


def test_cifar_archive_without_cifar(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    archive = _tar(tmp_path / "other", tmp_path / "other.tar.gz")
    with pytest.raises(InvalidInputError, match=r"other\.tar\.gz: no cifar-10-batches-py/ or cifar-100-python/"):
        load_file(archive)
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(InvalidInputError, match=r"broken\.tar\.gz: not a readable tar archive"):
        load_file(tmp_path / "broken.tar.gz")


# ── image folder ───────────────────────────────────────────────────────────────────────
def _save(path, value, *, mode="L", size=(8, 6)):
    """A constant image of ``size`` (width, height); ``value`` is the pixel (all channels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fill = value if mode == "L" else (value, value // 2, 255 - value)
    Image.new(mode, size, fill).save(path)
    return path


def _image_folder(root, classes=("cat", "dog"), n=5, **kw):
    for c, name in enumerate(classes):
        for i in range(n):
            _save(root / name / f"{i}.png", 10 * c + i, **kw)  # pixel value encodes class and index


def test_image_folder_grayscale_holdout(tmp_path):
    _image_folder(tmp_path / "pets")
    (tmp_path / "pets" / "cat" / ".DS_Store").write_bytes(b"junk")  # ignored: not an image
    assert detect_format(tmp_path / "pets") == "imagefolder"
    ds = load_file(tmp_path / "pets")
    assert ds.classes == ("cat", "dog") and ds.kind == "image"
    assert ds.x_train.shape == (8, 1, 6, 8) and ds.x_test.shape == (2, 1, 6, 8)  # (C, H, W)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert np.bincount(ds.y_test).tolist() == [1, 1]
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        pixel = np.round(x * 255).astype(int)
        assert (pixel == pixel[:, :1, :1, :1]).all()
        np.testing.assert_array_equal(pixel[:, 0, 0, 0] // 10, y)
    assert ds.info["mode"] == "L" and ds.info["test_split"] == "held out 20%"


def test_image_folder_rgb_when_any_is_color(tmp_path):
    _image_folder(tmp_path / "pets")
    _save(tmp_path / "pets" / "dog" / "color.png", 200, mode="RGB")
    ds = load_file(tmp_path / "pets")
    assert ds.feature_shape == (3, 6, 8) and ds.info["mode"] == "RGB"
    x = np.concatenate([ds.x_train, ds.x_test])
    colors = {tuple(np.round(img[:, 0, 0] * 255).astype(int)) for img in x}
    assert (200, 100, 55) in colors and (11, 11, 11) in colors  # gray replicated to 3 channels


def test_image_folder_train_test(tmp_path):
    _image_folder(tmp_path / "data" / "train", n=3)
    _image_folder(tmp_path / "data" / "test", n=2, mode="RGB")
    ds = load_file(tmp_path / "data")
    assert (ds.n_train, ds.n_test) == (6, 4) and ds.classes == ("cat", "dog")
    np.testing.assert_array_equal(ds.y_train, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(ds.y_test, [0, 0, 1, 1])
    assert ds.feature_shape == (3, 6, 8)
    np.testing.assert_allclose(ds.x_test[2, :, 0, 0] * 255, [10, 5, 245], atol=1e-4)
    assert ds.info["test_split"] == "test/ folder"


def test_image_folder_one_class(tmp_path):
    _image_folder(tmp_path / "pets", classes=("cat",))
    with pytest.raises(InvalidInputError, match=r"pets: found only one class folder \('cat'\); need at least 2"):
        load_file(tmp_path / "pets")


def test_image_folder_unreadable_image(tmp_path):
    _image_folder(tmp_path / "pets")
    (tmp_path / "pets" / "dog" / "broken.png").write_bytes(b"definitely not a png")
    with pytest.raises(InvalidInputError, match=r"dog/broken\.png: cannot read the image"):
        load_file(tmp_path / "pets")


def test_image_folder_truncated_image(tmp_path):
    _image_folder(tmp_path / "pets")
    path = _save(tmp_path / "pets" / "cat" / "noisy.png", 0)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (6, 8), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(InvalidInputError, match=r"cat/noisy\.png: cannot read the image"):
        load_file(tmp_path / "pets")


def test_image_folder_mixed_sizes(tmp_path):
    _image_folder(tmp_path / "pets")
    _save(tmp_path / "pets" / "dog" / "small.png", 3, size=(5, 5))
    with pytest.raises(
        InvalidInputError,
        match=r"images differ in size: .*cat/0\.png is 8x6 but .*dog/small\.png is 5x5 .*resize them all",
    ):
        load_file(tmp_path / "pets")


def test_image_folder_no_images(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        (tmp_path / "pets" / name / "notes.txt").write_text("no pictures")
    with pytest.raises(InvalidInputError, match=r"pets: no images \(\.png, .*\) in the class folders cat, dog"):
        load_file(tmp_path / "pets")


def test_image_folder_empty_class(tmp_path):
    _image_folder(tmp_path / "pets")
    (tmp_path / "pets" / "emu").mkdir()
    with pytest.raises(InvalidInputError, match="class folder.s. emu hold no images"):
        load_file(tmp_path / "pets")


def test_image_folder_split_errors(tmp_path):
    _image_folder(tmp_path / "a" / "train")
    with pytest.raises(InvalidInputError, match=r"has train/ but no test/; add test/"):
        load_file(tmp_path / "a")
    _image_folder(tmp_path / "a" / "test", classes=("cat", "dog", "emu"))
    with pytest.raises(InvalidInputError, match=r"test: class folder\(s\) emu are not in"):
        load_file(tmp_path / "a")


def test_image_folder_no_class_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="empty: unrecognised dataset directory"):
        load_file(tmp_path / "empty")
    with pytest.raises(InvalidInputError, match="empty: no class subfolders"):
        load_file(tmp_path / "empty", format="imagefolder")


# ── CSV ────────────────────────────────────────────────────────────────────────────────
def _write_csv(path, header, rows, sep=","):
    path.write_text("\n".join(sep.join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def test_csv_numeric_labels(tmp_path, rng):
    rows = [[i, float(rng.normal()), i % 3, (i % 3) + 1] for i in range(30)]  # labels 1..3
    path = _write_csv(tmp_path / "t.csv", ["idx", "f1", "f2", "label"], rows)
    assert detect_format(path) == "csv"
    ds = load_file(path)
    assert ds.kind == "vector" and ds.x_train.shape == (24, 3) and ds.x_test.shape == (6, 3)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.classes == ("1", "2", "3")
    table = np.array(rows, dtype=np.float32)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        idx = x[:, 0].astype(int)
        np.testing.assert_array_equal(x, table[idx, :3])
        np.testing.assert_array_equal(y, table[idx, 3] - 1)
    assert ds.info == {"format": "csv", "path": str(path), "label_column": "label", "test_split": "held out 20%",
                       "feature_columns": ["idx", "f1", "f2"]}


def test_csv_string_labels_and_tsv(tmp_path):
    names = ["versicolor", "setosa", "virginica"]
    rows = [[names[i % 3], i, i * 0.5] for i in range(15)]
    path = _write_csv(tmp_path / "iris.tsv", ["species", "a", "b"], rows, sep="\t")
    ds = load_file(path, label_column="species")
    assert ds.classes == ("setosa", "versicolor", "virginica")
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    for xi, yi in zip(x, y):
        assert ds.classes[yi] == names[int(xi[0]) % 3]


def test_csv_missing_label_column(tmp_path):
    path = _write_csv(tmp_path / "t.csv", ["a", "b", "target"], [[1, 2, 0], [3, 4, 1]])
    with pytest.raises(InvalidInputError, match=r"t\.csv: no label column 'label'; found columns a, b, target; "
                                                r"did you mean 'target'\?; pass label_column="):
        load_file(path)
    wide = [f"mean radius {i}" for i in range(30)] + ["diagnosis"]  # a wide table: the last column still shows
    path = _write_csv(tmp_path / "w.csv", wide, [list(range(30)) + [0], list(range(30)) + [1]])
    with pytest.raises(InvalidInputError, match=r"found columns mean radius 0, .*, mean radius 10, …, diagnosis "
                                                r"\(31 columns\); did you mean 'diagnosis'\?"):
        load_file(path)


def test_csv_non_numeric_feature(tmp_path):
    path = _write_csv(tmp_path / "t.csv", ["a", "color", "shape", "label"], [[1, 2, "x", 0], [3, "red", "y", 1]])
    with pytest.raises(InvalidInputError, match=r"t\.csv: feature column 'color' is not numeric \(e\.g\. 'red' on line 3\)"):
        load_file(path)


def test_csv_empty_feature_cell(tmp_path):
    path = _write_csv(tmp_path / "t.csv", ["a", "b", "label"], [[1, 2, 0], [3, "", 1], [4, 5, 1]])
    match = r"feature column 'b' has 1 empty, NaN or infinite cell\(s\) \(first on line 3\)"
    with pytest.raises(InvalidInputError, match=match):
        load_file(path)


def test_csv_bad_labels(tmp_path):
    path = _write_csv(tmp_path / "t.csv", ["a", "label"], [[1, 0], [2, ""], [3, 1]])
    with pytest.raises(InvalidInputError, match=r"label column 'label' has 1 empty cell\(s\) \(first on line 3\)"):
        load_file(path)
    path = _write_csv(tmp_path / "t.csv", ["a", "label"], [[1, 0], [2, 0.5], [3, 1]])
    with pytest.raises(InvalidInputError, match=r"label column 'label' holds fractions \(line 3\)"):
        load_file(path)


def test_csv_structure_errors(tmp_path):
    path = _write_csv(tmp_path / "t.csv", ["label"], [[0], [1]])
    with pytest.raises(InvalidInputError, match="no feature columns besides the label column"):
        load_file(path)
    path = _write_csv(tmp_path / "t.csv", ["a", "label"], [])
    with pytest.raises(InvalidInputError, match="has a header but no rows"):
        load_file(path)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InvalidInputError, match=r"empty\.csv: not a readable CSV file"):
        load_file(tmp_path / "empty.csv")


# ── dispatch ───────────────────────────────────────────────────────────────────────────
def test_npz_still_loads_with_info(tmp_path, rng):
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.normal(size=(20, 4)), y=np.arange(20) % 2)
    ds = load_file(path)
    assert ds.feature_shape == (4,) and ds.info["format"] == "npz" and ds.n_test == 4


def test_options_only_reach_loaders_that_take_them(tmp_path, rng):
    _write_mnist(tmp_path / "mnist", rng)
    with pytest.raises(InvalidInputError, match="option label_column does not apply to the idx format .it takes no options"):
        load_file(tmp_path / "mnist", label_column="y")
    path = _write_csv(tmp_path / "t.csv", ["a", "label"], [[i, i % 2] for i in range(10)])
    with pytest.raises(InvalidInputError, match="option label_mode does not apply to the csv format .it takes label_column"):
        load_file(path, label_mode="coarse")
    ds = load_file(tmp_path / "mnist", label_column=None, label_mode=None)  # None = not given
    assert ds.n_train == 20
    assert set(FORMATS) == {"npz", "idx", "cifar", "imagefolder", "csv"}


def test_format_override_and_unknown(tmp_path):
    path = _write_csv(tmp_path / "t.txt", ["a", "label"], [[i, i % 2] for i in range(10)])
    with pytest.raises(InvalidInputError, match=r"t\.txt: unrecognised dataset format; expected one of: npz"):
        load_file(path)
    assert load_file(path, format="csv").n_train == 8
    with pytest.raises(InvalidInputError, match="unknown format 'parquet': expected one of npz, idx"):
        load_file(path, format="parquet")
    with pytest.raises(InvalidInputError, match="nope.csv: file not found"):
        load_file(tmp_path / "nope.csv")


def test_load_dataset_passes_file_options(tmp_path):
    rows = [[i, "ab"[i % 2]] for i in range(40)]
    path = _write_csv(tmp_path / "t.csv", ["a", "y"], rows)
    ds = load_dataset(path, label_column="y", train_size=10)
    assert ds.n_train == 10 and ds.classes == ("a", "b")


def test_loaders_do_not_read_pickles_through_npz(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([object()] * 4, dtype=object), y=np.arange(4))
    with pytest.raises(InvalidInputError, match=r"obj\.npz: array .x. holds Python objects \(dtype object\), which rotelab never loads"):
        load_file(path)


# ── later additions: legacy layouts and stricter corners ───────────────────────────────
def test_idx_torchvision_raw_layout(tmp_path, rng):
    _write_mnist(tmp_path / "MNIST" / "raw", rng, gz=True)
    (tmp_path / "MNIST" / "processed").mkdir()
    assert detect_format(tmp_path / "MNIST") == "idx"
    ds = load_file(tmp_path / "MNIST")
    assert ds.name == "MNIST" and (ds.n_train, ds.n_test) == (20, 10)
    assert ds.info["files"][0] == "raw/train-images-idx3-ubyte.gz"


def test_cifar_python2_module_names(tmp_path, rng):
    """The official files name ``numpy.core.multiarray``; numpy 2 writes ``numpy._core``."""
    directory = tmp_path / "cifar-10-batches-py"
    arrays = _write_cifar10(directory, rng)
    for f in directory.iterdir():
        if f.name != "readme.html":
            f.write_bytes(f.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"cnumpy.core.multiarray\n_reconstruct" in (directory / "data_batch_1").read_bytes()
    _check_cifar10(load_file(directory), arrays)


def test_cifar_codecs_encode_only_latin1(tmp_path, rng):
    directory = tmp_path / "cifar-10-batches-py"
    _write_cifar10(directory, rng)
    # {b"batch_label": _codecs.encode("x", "rot13")} written by hand with protocol-2 opcodes
    payload = (
        b"\x80\x02}q\x00X\x0b\x00\x00\x00batch_label"  # PROTO 2, EMPTY_DICT, key
        b"c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R"  # GLOBAL, args, REDUCE
        b"s."  # SETITEM, STOP
    )
    (directory / "batches.meta").write_bytes(payload)
    with pytest.raises(InvalidInputError, match=r"batches\.meta: not a readable CIFAR batch .*only for latin1"):
        load_file(directory)


def test_image_folder_16_bit_grayscale(tmp_path):
    for c, name in enumerate(("a", "b")):
        for i in range(5):
            path = tmp_path / "deep" / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((4, 4), 65535 if c else 13107, dtype=np.uint16)).save(path)
    ds = load_file(tmp_path / "deep")
    x = np.concatenate([ds.x_train, ds.x_test])[:, 0, 0, 0]
    y = np.concatenate([ds.y_train, ds.y_test])
    np.testing.assert_allclose(x, np.where(y == 1, 1.0, 0.2), rtol=1e-6)  # scaled, not clipped


def test_image_folder_refuses_32_bit(tmp_path):
    _image_folder(tmp_path / "pets")
    Image.fromarray(np.zeros((6, 8), dtype=np.int32)).save(tmp_path / "pets" / "cat" / "deep.tif")
    with pytest.raises(InvalidInputError, match=r"deep\.tif: 32-bit integer images are not supported"):
        load_file(tmp_path / "pets")
