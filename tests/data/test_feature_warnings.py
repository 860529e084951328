"""Feature warnings for tabular data: constant columns, huge or mismatched raw scales."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

import rotelab.data.features as features_module
from rotelab.data import load_dataset, make_dataset
from rotelab.data.features import LARGE_VALUE, SCALE_RATIO, feature_warnings
from rotelab.errors import InvalidInputError


def _table(tmp_path, columns: dict, n=40):
    """A CSV with the given feature columns (arrays of length n) and a balanced label column."""
    path = tmp_path / "t.csv"
    pd.DataFrame({**columns, "label": np.arange(n) % 2}).to_csv(path, index=False)
    return load_dataset(path)


def test_clean_features_give_no_warning(tmp_path, rng):
    ds = _table(tmp_path, {"a": rng.normal(size=40), "b": rng.normal(size=40) * 3})
    assert feature_warnings(ds, standardize=True) == []
    assert feature_warnings(ds, standardize=False) == []


@pytest.mark.parametrize("standardize", [True, False])
def test_a_constant_column_is_named_with_or_without_standardization(tmp_path, rng, standardize):
    ds = _table(tmp_path, {"a": rng.normal(size=40), "flag": np.full(40, 7.0), "b": rng.normal(size=40)})
    (line,) = feature_warnings(ds, standardize=standardize)
    assert line == ("t.csv: 1 constant feature column (same value in all 32 training examples): 'flag'; "
                    "it carries no information, drop it")


def test_many_constant_columns_make_one_shortened_line(rng):
    x = np.zeros((30, 9))
    x[:, 0] = rng.normal(size=30)
    ds = make_dataset("m", x, np.arange(30) % 3)
    (line,) = feature_warnings(ds, standardize=True)
    assert line.startswith("m: 8 constant feature columns (same value in all 24 training examples): feature 1, ")
    assert "feature 5, … (8 columns); they carry no information, drop them" in line


def test_huge_values_warn_only_without_standardization(tmp_path, rng):
    big = rng.normal(size=40) * 300
    big[::4] = 2.5 * LARGE_VALUE  # 10 rows: some of them are in the training pool whatever the holdout
    ds = _table(tmp_path, {"area": big, "b": rng.normal(size=40) * 300})
    assert feature_warnings(ds, standardize=True) == []
    (line,) = feature_warnings(ds, standardize=False)
    assert line == ("t.csv: features are not standardized and 1 column(s) exceed |x| = 1000 (largest 2500 in "
                    "'area'): 'area'; a network trains poorly on raw values this large, drop --no-standardize "
                    "(Python: standardize=True)")


def test_values_just_below_the_limit_do_not_warn(tmp_path):
    ds = _table(tmp_path, {"a": np.linspace(-LARGE_VALUE, LARGE_VALUE, 40), "b": np.linspace(-900, 900, 40)[::-1]})
    assert feature_warnings(ds, standardize=False) == []


def test_mismatched_scales_warn_without_standardization(tmp_path, rng):
    ds = _table(tmp_path, {"tiny": rng.normal(size=40) * 1e-3, "unit": rng.normal(size=40)})
    assert feature_warnings(ds, standardize=True) == []
    (line,) = feature_warnings(ds, standardize=False)
    std = ds.x_train.astype(np.float64).std(axis=0)
    assert std[1] / std[0] > SCALE_RATIO
    assert line.startswith(f"t.csv: features are not standardized and their scales differ {std[1] / std[0]:.3g}-fold")
    assert "for 'unit'" in line and "for 'tiny'" in line


def test_breast_cancer_raw_features_warn_and_standardized_do_not(tmp_path):
    from sklearn.datasets import load_breast_cancer

    path = tmp_path / "breast_cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(path, index=False)
    ds = load_dataset(path, label_column="target")
    assert feature_warnings(ds, standardize=True) == []
    large, scales = feature_warnings(ds, standardize=False)
    assert "exceed |x| = 1000" in large and "'worst area'" in large
    assert "scales differ" in scales


def test_constant_pixels_and_sequence_steps_are_not_reported():
    x = np.zeros((20, 1, 4, 4))  # constant pixels everywhere but one
    x[:, 0, 1, 1] = np.arange(20) / 20
    ds = make_dataset("img", x, np.arange(20) % 2)
    assert ds.kind == "image" and feature_warnings(ds, standardize=False) == []
    seq = make_dataset("seq", np.zeros((20, 1, 8)) + np.arange(20)[:, None, None] * 1e4, np.arange(20) % 2,
                       kind="sequence")
    assert feature_warnings(seq, standardize=False) == []


def test_bad_arguments():
    ds = make_dataset("d", np.arange(20.0)[:, None], np.arange(20) % 2)
    with pytest.raises(InvalidInputError, match="feature_warnings needs a rotelab Dataset, got ndarray"):
        feature_warnings(np.zeros((3, 2)), standardize=True)
    with pytest.raises(InvalidInputError, match="standardize must be True or False, got 'yes'"):
        feature_warnings(ds, standardize="yes")


def test_docstring_example_runs():
    assert doctest.testmod(features_module).failed == 0
