"""How inputs are read, whatever their source: uint8 pixels, channels-last images, PIL images,
labels that are not class indices, CSV line numbers, pandas indexes, files that are not .npz;
and that every resulting warning reaches `rotelab datasets PATH`."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.utils.data as tud
from PIL import Image

from rotelab.data import feature_warnings, load_dataset, make_dataset, stratified_subset
from rotelab.data.features import IMAGE_MAX
from rotelab.data.files import load_file
from rotelab.errors import InvalidInputError


@pytest.fixture
def pixels(rng) -> np.ndarray:
    """uint8 (40, 6, 5, 3): 40 small RGB images as PIL and matplotlib hold them (H, W, C)."""
    return rng.integers(0, 256, size=(40, 6, 5, 3), dtype=np.uint8)


@pytest.fixture
def labels() -> np.ndarray:
    return np.arange(40) % 2


class _Items(tud.Dataset):
    """A map-style Dataset over a list of (x, y) items, as a user writes one."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _all(ds):
    """Pool and test split back together in id order: (x, y)."""
    order = np.argsort(ds.all_ids(), kind="stable")
    return np.concatenate([ds.x_train, ds.x_test])[order], np.concatenate([ds.y_train, ds.y_test])[order]


# ── 1. uint8 pixels are scaled to [0, 1] everywhere ───────────────────────────────────────
@pytest.mark.parametrize("shape", [(40, 6, 5), (40, 3, 6, 5)])
def test_uint8_image_arrays_are_divided_by_255(rng, labels, shape):
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    xt = rng.integers(0, 256, size=(10, *shape[1:]), dtype=np.uint8)
    ds = make_dataset("u8", x, labels, xt, np.arange(10) % 2)
    expected = x.astype(np.float32) / 255.0
    np.testing.assert_array_equal(ds.x_train, expected if len(shape) == 4 else expected[:, None])
    assert ds.x_test.max() <= 1.0 and ds.x_test.dtype == np.float32
    assert feature_warnings(ds, standardize=False) == []


def test_uint8_vectors_and_float_images_keep_their_values(rng, labels):
    counts = rng.integers(0, 256, size=(40, 7), dtype=np.uint8)  # tabular counts, not pixels
    np.testing.assert_array_equal(_all(make_dataset("v", counts, labels))[0], counts.astype(np.float32))
    floats = rng.random((40, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(_all(make_dataset("f", floats, labels))[0], floats)


def test_uint8_reads_the_same_from_arrays_tensors_npz_and_a_torch_dataset(tmp_path, rng, labels):
    x = rng.integers(0, 256, size=(40, 1, 6, 5), dtype=np.uint8)
    np.savez(tmp_path / "u8.npz", x=x, y=labels)
    expected = x.astype(np.float32) / 255.0  # what the IDX and CIFAR loaders compute
    sources = [(x, labels), (torch.from_numpy(x), torch.from_numpy(labels)), tmp_path / "u8.npz",
               _Items([(torch.from_numpy(x[i]), int(labels[i])) for i in range(40)])]
    for source in sources:
        np.testing.assert_array_equal(_all(load_dataset(source))[0], expected)


def test_idx_files_give_the_same_floats_as_uint8_arrays(tmp_path, rng, labels):
    x = rng.integers(0, 256, size=(40, 6, 5), dtype=np.uint8)
    for kind, arr in (("images", x), ("labels", labels.astype(np.uint8))):
        head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
        (tmp_path / f"train-{kind}-idx{arr.ndim}-ubyte").write_bytes(head + arr.tobytes())
    from_file, from_arrays = load_file(tmp_path), make_dataset("a", x, labels)
    np.testing.assert_array_equal(from_file.x_train, from_arrays.x_train)
    assert from_file.x_train.max() <= 1.0


def test_float_images_that_look_like_0_255_get_a_warning(rng, labels):
    ds = make_dataset("raw", rng.integers(0, 256, size=(40, 1, 6, 5)).astype(np.float32), labels)
    (line,) = feature_warnings(ds, standardize=False)
    assert line.startswith("raw: image values go up to 255 (above 10), which looks like 0..255 pixels")
    assert "divide the images by 255" in line
    assert feature_warnings(ds, standardize=True) == []  # standardized images are fine on any scale
    just_below = make_dataset("ok", np.full((40, 1, 2, 2), IMAGE_MAX, dtype=np.float32), labels)
    assert feature_warnings(just_below, standardize=False) == []


# ── 2. channels-last images ─────────────────────────────────────────────────────────────
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_pil_images_from_a_torch_dataset_are_channels_first_in_0_1(tmp_path, pixels, labels, mode):
    images = [Image.fromarray(p).convert(mode) for p in pixels]
    ds = load_dataset(_Items([(im, int(y)) for im, y in zip(images, labels)]))
    channels = 3 if mode == "RGB" else 1
    assert ds.kind == "image" and ds.feature_shape == (channels, 6, 5)
    expected = np.stack([np.asarray(im, dtype=np.float32).reshape(6, 5, channels) for im in images]) / 255.0
    np.testing.assert_allclose(_all(ds)[0], expected.transpose(0, 3, 1, 2), rtol=1e-6)
    assert feature_warnings(ds, standardize=False) == []  # PIL is unambiguous: nothing to say
    for i, (im, y) in enumerate(zip(images, labels)):  # the same pictures as an image folder
        (tmp_path / "pics" / str(y)).mkdir(parents=True, exist_ok=True)
        im.save(tmp_path / "pics" / str(y) / f"{i}.png")
    folder = load_file(tmp_path / "pics")
    index = [int(Path(path).stem) for path in folder.all_ids()]
    np.testing.assert_array_equal(np.concatenate([folder.x_train, folder.x_test]), _all(ds)[0][index])


def test_a_pil_image_without_a_known_range_is_refused_naming_the_item(labels):
    images = [Image.fromarray(np.zeros((4, 4), dtype=np.float32)) for _ in labels]  # mode "F"
    with pytest.raises(InvalidInputError, match=r"torch-dataset: item 0: 32-bit float images are not supported"):
        load_dataset(_Items([(im, int(y)) for im, y in zip(images, labels)]))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channels_last_arrays_are_transposed_and_said_so(tmp_path, rng, labels, channels):
    x = rng.integers(0, 256, size=(40, 8, 7, channels), dtype=np.uint8)
    np.savez(tmp_path / "hwc.npz", x=x, y=labels)
    ds = load_dataset(tmp_path / "hwc.npz")
    assert ds.feature_shape == (channels, 8, 7)
    np.testing.assert_array_equal(_all(ds)[0], x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    (line,) = feature_warnings(ds, standardize=False)
    assert line == (f"hwc.npz: images of shape (8, 7, {channels}) read as channels-last (H, W, C) and transposed "
                    f"to (C, H, W) = ({channels}, 8, 7); give (C, H, W) to skip this")


@pytest.mark.parametrize("shape", [(3, 8, 7), (1, 8, 8), (3, 8, 3), (4, 4, 4), (5, 8, 7)])
def test_channels_first_and_ambiguous_shapes_are_left_as_given(rng, labels, shape):
    ds = make_dataset("chw", rng.random((40, *shape)), labels)
    assert ds.feature_shape == shape and ds.notes == ()


def test_the_note_survives_subsets_and_label_noise(rng, labels):
    ds = make_dataset("hwc", rng.random((40, 8, 8, 3)), labels)
    small = load_dataset(ds, train_size=10, label_noise=0.2)
    assert small.notes == ds.notes and len(small.notes) == 1
    assert stratified_subset(ds, 12).notes == ds.notes


# ── 3. CSV errors name the file's real line ─────────────────────────────────────────────
def test_csv_nan_after_a_blank_line_is_named_by_its_real_line(tmp_path):
    lines = ["a,b,label", "1,2,0", "3,4,1", "", "5,6,0", "7,8,1", "9,nan,0", "1,1,1"]  # blank line 4
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError, match=r"feature column 'b' has 1 empty, NaN or infinite cell\(s\) "
                                                r"\(first on line 7\)"):
        load_file(path)


@pytest.mark.parametrize(("bad", "match"), [
    ("9,red,0", r"feature column 'b' is not numeric \(e\.g\. 'red' on line 8\)"),
    ("9,1,", r"label column 'label' has 1 empty cell\(s\) \(first on line 8\)"),
    ("9,1,0.5", r"label column 'label' holds fractions \(line 8\)"),
])
def test_every_csv_error_counts_blank_lines_and_multi_line_cells(tmp_path, bad, match):
    lines = ["", "a,b,label", '"1', '",2,0', "   ", "3,4,1", "", bad, "5,6,1"]  # header on line 2
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError, match=match):
        load_file(path)


def test_a_row_that_cannot_be_placed_on_a_line_is_named_as_pandas_numbers_it(tmp_path):
    from rotelab.data.csvfile import _first_bad

    path = tmp_path / "t.csv"
    path.write_text("a,label\n1,0\n2,1\n")
    assert _first_bad(np.array([False, True]), path) == (1, "line 3")
    assert _first_bad(np.array([False, True, False]), path) == (1, "data row 1 (pd.read_csv(path).iloc[1])")


# ── 4. labels are class indices 0..K-1 ──────────────────────────────────────────────────
@pytest.mark.parametrize(("codes", "top", "empty"), [((0, 5, 10), 10, 8), ((0, 1, 1000), 1000, 998)])
def test_labels_that_leave_most_classes_empty_are_refused(tmp_path, rng, codes, top, empty):
    y = np.array(codes * 10)
    match = (rf"labels must be class indices 0\.\.K-1, but 3 distinct labels go up to {top}, so {empty} of the "
             rf"{top + 1} classes 0\.\.{top} would have no example; remap them to 0\.\.K-1, e\.g\. "
             r"y = numpy\.unique\(y, return_inverse=True\)\[1\]")
    with pytest.raises(InvalidInputError, match=match):
        make_dataset("codes", rng.normal(size=(30, 2)), y)
    np.savez(tmp_path / "codes.npz", x=rng.normal(size=(30, 2)), y=y)
    with pytest.raises(InvalidInputError, match=r"codes\.npz: labels must be class indices"):
        load_dataset(tmp_path / "codes.npz")


def test_a_few_empty_classes_are_named_in_a_warning(rng):
    ds = make_dataset("gap", rng.normal(size=(40, 2)), np.array([0, 1, 2, 4] * 10))
    assert ds.n_classes == 5
    assert feature_warnings(ds, standardize=True) == [
        "gap: 1 of the 5 classes has no example: 3; labels are read as class indices 0..max; remap them to "
        "0..K-1, e.g. y = numpy.unique(y, return_inverse=True)[1]"]


def test_named_classes_without_examples_get_their_own_fix(rng, labels):
    ds = make_dataset("named", rng.normal(size=(40, 2)), labels, classes=["cat", "dog", "eel"])
    assert feature_warnings(ds, standardize=True) == [
        "named: 1 of the 3 classes has no example: 'eel'; add examples of them or leave them out of the classes"]


def test_a_test_label_never_seen_in_training_gets_a_warning(rng, labels):
    ds = make_dataset("t", rng.normal(size=(40, 2)), labels, rng.normal(size=(6, 2)), np.array([0, 1, 2, 2, 0, 1]))
    assert feature_warnings(ds, standardize=True) == [
        "t: 2 of 6 test examples have a label never seen in training (2); no model can learn it and they count "
        "as errors: give the training data examples of it or drop them from the test split"]


def test_named_labels_from_files_are_unchanged(tmp_path):
    rows = [f"{i},{('a', 'k', 'z')[i % 3]}" for i in range(30)]
    (tmp_path / "s.csv").write_text("f,label\n" + "\n".join(rows) + "\n")
    ds = load_file(tmp_path / "s.csv")
    assert ds.classes == ("a", "k", "z") and feature_warnings(ds, standardize=True) == []


# ── 5. a file named .npz that is not one ────────────────────────────────────────────────
def test_a_text_file_named_npz_is_refused_without_pickle_advice(tmp_path, rng):
    (tmp_path / "x.npz").write_text("a,b,label\n1,2,0\n")
    with pytest.raises(InvalidInputError) as err:
        load_file(tmp_path / "x.npz")
    assert str(err.value) == (f"{tmp_path / 'x.npz'}: not a readable .npz file (not a zip archive, which is what "
                              "numpy.savez writes); save the arrays with np.savez(path, x=..., y=...)")
    np.save(tmp_path / "one.npy", rng.normal(size=(4, 2)))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(InvalidInputError, match=r"one\.npz: not a readable \.npz file \(a single \.npy array"):
        load_file(tmp_path / "one.npz")


# ── 6. a pandas index saved by to_csv ───────────────────────────────────────────────────
def test_a_saved_pandas_index_is_dropped_with_a_warning(tmp_path, rng):
    frame = pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30), "label": np.arange(30) % 2})
    frame.sample(frac=1.0, random_state=0).to_csv(tmp_path / "t.csv")  # the default: index=True, shuffled
    ds = load_file(tmp_path / "t.csv")
    assert ds.info["feature_columns"] == ["a", "b"] and ds.feature_shape == (2,)
    assert feature_warnings(ds, standardize=True) == [
        "t.csv: the first column 'Unnamed: 0' (no header name, distinct whole numbers) looks like a pandas index "
        "saved by to_csv; it was dropped, not used as a feature (write the file with to_csv(index=False) to "
        "silence this)"]
    frame.sample(frac=1.0, random_state=0).to_csv(tmp_path / "clean.csv", index=False)
    clean = load_file(tmp_path / "clean.csv")  # the same table written without its index
    assert clean.fingerprint() == ds.fingerprint() and feature_warnings(clean, standardize=True) == []


def test_an_unnamed_column_that_is_not_an_index_stays_a_feature(tmp_path):
    (tmp_path / "t.csv").write_text(",a,label\n" + "\n".join(f"{i % 3},{i},{i % 2}" for i in range(20)) + "\n")
    ds = load_file(tmp_path / "t.csv")
    assert ds.info["feature_columns"] == ["Unnamed: 0", "a"] and ds.notes == ()
    (tmp_path / "only.csv").write_text(",label\n" + "\n".join(f"{i},{i % 2}" for i in range(20)) + "\n")
    with pytest.raises(InvalidInputError, match=r"no feature columns besides the label column 'label' "
                                                r"\(the first column, 'Unnamed: 0', is a saved pandas index\)"):
        load_file(tmp_path / "only.csv")


# ── warnings reach `rotelab datasets PATH` ──────────────────────────────────────────────
def test_datasets_prints_the_warnings_a_study_prints(tmp_path, rng, cli):
    frame = pd.DataFrame({"a": rng.normal(size=30), "flag": 7.0, "label": np.arange(30) % 2})
    frame.to_csv(tmp_path / "t.csv")
    proc = cli("datasets", str(tmp_path / "t.csv"))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2
    assert "'Unnamed: 0'" in warnings[0] and "1 constant feature column" in warnings[1] and "'flag'" in warnings[1]
    assert proc.stdout.startswith(f"{tmp_path / 't.csv'}: csv")  # no literal [bold] markup
