"""Built-in datasets, subsets, label noise and the .npz loader, with their bad inputs."""

import numpy as np
import pytest

from rotelab.data import flip_labels, load_dataset, make_dataset, stratified_subset
from rotelab.errors import InvalidInputError


@pytest.mark.parametrize("name,shape,n_train,n_test,kind", [
    ("digits", (1, 8, 8), 1437, 360, "image"),
    ("mnist1d", (1, 40), 4000, 1000, "sequence"),
    ("synthetic", (16,), 300, 200, "vector"),
])
def test_builtin_shapes(name, shape, n_train, n_test, kind):
    ds = load_dataset(name)
    assert ds.feature_shape == shape and ds.kind == kind
    assert (ds.n_train, ds.n_test, ds.n_classes) == (n_train, n_test, 10 if name != "synthetic" else 4)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert np.isfinite(ds.x_train).all()
    assert set(np.unique(ds.y_test)) <= set(range(ds.n_classes))


def test_mnist1d_is_cached_and_identical(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTELAB_CACHE", str(tmp_path))
    a = load_dataset("mnist1d")
    assert list(tmp_path.glob("mnist1d-*.npz"))
    b = load_dataset("mnist1d")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    state = np.random.get_state()[1].copy()
    (tmp_path / next(tmp_path.glob("mnist1d-*.npz")).name).unlink()
    load_dataset("mnist1d")  # regenerates: must not disturb the caller's global RNG
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_stratified_subset_keeps_class_proportions():
    ds = load_dataset("digits", train_size=200)
    assert ds.n_train == 200 and ds.n_test == 360
    counts = np.bincount(ds.y_train, minlength=10)
    assert counts.min() >= 19 and counts.max() <= 21


def test_label_noise_flips_exactly_the_fraction_to_wrong_classes():
    ds = load_dataset("digits", train_size=300, label_noise=0.2, seed=3)
    assert ds.noisy_mask.sum() == 60
    assert (ds.y_train[ds.noisy_mask] != ds.y_train_clean[ds.noisy_mask]).all()
    assert (ds.y_train[~ds.noisy_mask] == ds.y_train_clean[~ds.noisy_mask]).all()
    again = load_dataset("digits", train_size=300, label_noise=0.2, seed=3)
    np.testing.assert_array_equal(ds.y_train, again.y_train)
    other = load_dataset("digits", train_size=300, label_noise=0.2, seed=4)
    assert not np.array_equal(ds.noisy_mask, other.noisy_mask)


def test_fingerprint_changes_with_the_data():
    a, b = load_dataset("synthetic"), load_dataset("synthetic", label_noise=0.1)
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == load_dataset("synthetic").fingerprint()


def test_npz_round_trip(tmp_path, rng):
    x = rng.normal(size=(50, 6)).astype(np.float32)
    y = np.arange(50) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y, classes=np.array(["a", "b", "c"]))
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.n_train + ds.n_test == 50 and ds.classes == ("a", "b", "c") and ds.kind == "vector"


@pytest.mark.parametrize("make,match", [
    (lambda p, r: np.savez(p, x=r.normal(size=(10, 3))), "missing array"),
    (lambda p, r: p.write_bytes(b"not a zip"), "not a readable .npz"),
    (lambda p, r: np.savez(p, x=np.full((10, 3), np.nan), y=np.arange(10) % 2), "NaN"),
    (lambda p, r: np.savez(p, x=r.normal(size=(10, 3)), y=np.arange(9) % 2), "inconsistent numbers of samples"),
    (lambda p, r: np.savez(p, x=r.normal(size=(10, 3)), y=np.arange(10) % 2,
                           classes=np.array(["a", "b"]), x_test=r.normal(size=(4, 3)), y_test=np.array([0, 1, 2, 0])),
     "out of range"),
    (lambda p, r: np.savez(p, x=r.normal(size=(10, 3)), y=-np.ones(10)), "negative label"),
])
def test_bad_npz_files(tmp_path, rng, make, match):
    path = tmp_path / "bad.npz"
    make(path, rng)
    with pytest.raises(InvalidInputError, match=match):
        load_dataset(path)


def test_bad_names_and_sizes(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(InvalidInputError, match="file not found"):
        load_dataset(tmp_path / "missing.npz")
    with pytest.raises(InvalidInputError, match="larger than the 300 training examples"):
        load_dataset("synthetic", train_size=301)
    with pytest.raises(InvalidInputError, match="positive whole number"):
        stratified_subset(load_dataset("synthetic"), 0)
    with pytest.raises(InvalidInputError, match=r"label noise must be in \[0.0, 1.0\)"):
        flip_labels(load_dataset("synthetic"), 1.0)
    with pytest.raises(InvalidInputError, match="at least 2 classes"):
        make_dataset("x", np.zeros((4, 2)), np.zeros(4, int))
