"""Tests for rotelab.measures.noise: the label-noise memorization probe."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from rotelab.errors import InvalidInputError
from rotelab.measures import noise
from rotelab.measures.noise import clean_accuracy, masked_mean, noisy_labels_memorized


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def probe(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """6 models, 80 samples, 4 classes, ~30% flipped labels, random predictions and masks."""
    n_models, n_samples, n_classes = 6, 80, 4
    clean = rng.integers(0, n_classes, size=n_samples)
    flip = rng.random(n_samples) < 0.3
    given = np.where(flip, (clean + rng.integers(1, n_classes, size=n_samples)) % n_classes, clean)
    guess = rng.integers(0, n_classes, size=(n_models, n_samples))
    pred = np.where(rng.random((n_models, n_samples)) < 0.5, given, guess)
    train_mask = rng.random((n_models, n_samples)) < 0.7
    train_mask[-1, flip] = False  # last model saw no flipped example -> NaN
    return {"pred": pred, "given": given, "clean": clean, "train_mask": train_mask}


# ── slow references ────────────────────────────────────────────────────────────────────
def memorized_reference(pred, given, clean, train_mask):
    out = []
    for m in range(len(pred)):
        hits = total = 0
        for i in range(len(given)):
            if train_mask[m][i] and given[i] != clean[i]:
                total += 1
                hits += int(pred[m][i] == given[i])
        out.append(hits / total if total else math.nan)
    return np.array(out)


def masked_mean_reference(values, mask):
    out = []
    for row, keep in zip(values, mask):
        chosen = [v for v, k in zip(row, keep) if k]
        out.append(sum(chosen) / len(chosen) if chosen else math.nan)
    return np.array(out)


# ── noisy_labels_memorized ─────────────────────────────────────────────────────────────
def test_memorized_by_hand():
    clean = [0, 1, 2, 0, 1]
    given = [0, 2, 0, 0, 0]  # samples 1, 2, 4 flipped
    pred = [
        [0, 2, 0, 0, 1],  # trained on all: flipped 1, 2 reproduced, 4 not -> 2/3
        [0, 1, 2, 0, 0],  # trained on 0, 1, 3: flipped 1 predicted clean -> 0/1
        [0, 2, 0, 0, 0],  # trained on 0, 3 only: no flipped example -> NaN
    ]
    train_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [1, 0, 0, 1, 0]], dtype=bool)
    out = noisy_labels_memorized(pred, given, clean, train_mask)
    assert out.shape == (3,) and out.dtype == np.float64
    np.testing.assert_allclose(out, [2 / 3, 0.0, np.nan])


def test_memorized_matches_reference(probe):
    out = noisy_labels_memorized(**probe)
    np.testing.assert_allclose(out, memorized_reference(**probe))
    assert math.isnan(out[-1]) and np.all((out[:-1] >= 0) & (out[:-1] <= 1))


def test_memorized_ignores_held_out_and_clean_examples(probe):
    flipped_train = probe["train_mask"] & (probe["given"] != probe["clean"])
    pred = np.where(flipped_train, probe["given"], probe["clean"])  # fits exactly the trained noise
    np.testing.assert_allclose(noisy_labels_memorized(**{**probe, "pred": pred})[:-1], 1.0)
    pred = np.broadcast_to(probe["clean"], pred.shape)  # predicts every true label
    np.testing.assert_allclose(noisy_labels_memorized(**{**probe, "pred": pred})[:-1], 0.0)


def test_memorized_without_noise_is_nan():
    y = np.array([0, 1, 2])
    out = noisy_labels_memorized([[0, 1, 2], [2, 1, 0]], y, y, np.ones((2, 3), dtype=bool))
    assert np.isnan(out).all()


# ── clean_accuracy and masked_mean ─────────────────────────────────────────────────────
def test_clean_accuracy_by_hand():
    pred = [[0, 1, 1, 2], [0, 0, 0, 0]]
    clean = [0, 1, 2, 2]
    mask = np.array([[True, True, True, False], [False, False, False, False]])
    # model 0 counts samples 0, 1, 2: right, right, wrong -> 2/3; model 1 has none -> NaN
    np.testing.assert_allclose(clean_accuracy(pred, clean, mask), [2 / 3, np.nan])


def test_clean_accuracy_matches_reference(probe):
    pred, clean, mask = probe["pred"], probe["clean"], ~probe["train_mask"]
    expected = masked_mean_reference((pred == clean).astype(float), mask)
    np.testing.assert_allclose(clean_accuracy(pred, clean, mask), expected)


def test_masked_mean_by_hand():
    values = [[0.5, 1.5, 9.0], [2.0, 4.0, 6.0], [1.0, 1.0, 1.0]]
    mask = np.array([[True, True, False], [True, True, True], [False, False, False]])
    np.testing.assert_allclose(masked_mean(values, mask), [1.0, 4.0, np.nan])


def test_masked_mean_matches_reference(rng):
    values = rng.exponential(size=(5, 40))
    mask = rng.random((5, 40)) < 0.4
    mask[2] = False
    np.testing.assert_allclose(masked_mean(values, mask), masked_mean_reference(values, mask))


def test_masked_mean_nan_inside_mask_propagates_outside_is_ignored():
    values = [[np.nan, 1.0, 3.0], [np.nan, 1.0, 3.0]]
    mask = np.array([[False, True, True], [True, True, True]])
    out = masked_mean(values, mask)
    assert out[0] == 2.0 and math.isnan(out[1])


# ── validation ─────────────────────────────────────────────────────────────────────────
def _ok():
    return {
        "pred": np.zeros((2, 3), dtype=int),
        "given": np.array([0, 1, 1]),
        "clean": np.array([0, 1, 0]),
        "train_mask": np.ones((2, 3), dtype=bool),
    }


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"pred": np.zeros(3, dtype=int)}, r"pred must have shape \(n_models, n_samples\), got shape \(3,\)"),
        ({"pred": np.zeros((0, 3), dtype=int)}, "pred is empty"),
        ({"pred": np.full((2, 3), 0.5)}, "pred must hold whole-number class indices"),
        ({"pred": -np.ones((2, 3), dtype=int)}, "pred has a negative label"),
        ({"given": np.array([0, 1])}, "inconsistent numbers of samples: given has 2 labels for 3 samples"),
        ({"clean": np.array(["a", "b", "c"])}, "clean must hold integer class indices"),
        (
            {"train_mask": np.ones((2, 3), dtype=np.int64)},
            r"train_mask must be boolean, got dtype int64; pass mask.astype\(bool\)",
        ),
        (
            {"train_mask": np.ones((3, 3), dtype=bool)},
            r"train_mask must have shape \(2, 3\) \(n_models, n_samples\), got shape \(3, 3\)",
        ),
    ],
)
def test_memorized_rejects(change, match):
    with pytest.raises(InvalidInputError, match=match):
        noisy_labels_memorized(**{**_ok(), **change})


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([[0, 1]], [0, 1, 2], [[True, True]]), "inconsistent numbers of samples: clean has 3 labels for 2"),
        (([[0, 1]], [0, 1], [True, True]), r"mask must have shape \(1, 2\)"),
        (([[0, 1]], [0, 1], [[1, 0]]), "mask must be boolean"),
    ],
)
def test_clean_accuracy_rejects(args, match):
    with pytest.raises(InvalidInputError, match=match):
        clean_accuracy(*args)


@pytest.mark.parametrize(
    ("values", "mask", "match"),
    [
        ([1.0, 2.0], [[True, True]], r"values must have shape \(n_models, n_samples\), got shape \(2,\)"),
        (np.zeros((2, 0)), np.zeros((2, 0), dtype=bool), "values is empty"),
        ([["a", "b"]], [[True, True]], "values must be numeric"),
        ([[1.0, 2.0]], [[True]], r"mask must have shape \(1, 2\)"),
        ([[1.0, 2.0]], [[1.0, 0.0]], "mask must be boolean, got dtype float64"),
    ],
)
def test_masked_mean_rejects(values, mask, match):
    with pytest.raises(InvalidInputError, match=match):
        masked_mean(values, mask)


def test_doctests():
    assert doctest.testmod(noise).failed == 0
