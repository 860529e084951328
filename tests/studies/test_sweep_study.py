"""``rotelab.sweep``: curves against training-set size and width, validated up front, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rotelab.data.builtin import synthetic
from rotelab.data.noise import flip_labels
from rotelab.errors import InvalidInputError
from conftest import RecordingProgress
from rotelab.plan import subset_index
from rotelab.studies.sweep import sweep

FAST = dict(epochs=2, batch_size=32, device="cpu")


@pytest.fixture
def small():
    """120 pool / 30 test examples, 3 classes, 8 features."""
    return synthetic(n_train=120, n_test=30, n_features=8, n_classes=3, seed=2)


Recording = RecordingProgress


def test_curves_tables_and_figures(tmp_path, small):
    p = Recording()
    r = sweep(small, "mlp", train_sizes="30,60,all", widths="4,32", folds=3, label_noise=0.2, width=16,
              runs_dir=tmp_path, progress=p, **FAST)
    assert p.starts == [(5 * 2, 0, 5)]  # one bar over 3 sizes + 2 widths
    assert r.sizes["train_size"].tolist() == [30, 60, 120] and (r.sizes["width"] == 16).all()
    assert r.widths["width"].tolist() == [4, 32] and (r.widths["train_size"] == 120).all()
    assert r.widths["params"].tolist() == [8 * 4 + 4 + 4 * 4 + 4 + 4 * 3 + 3, 8 * 32 + 32 + 32 * 32 + 32 + 32 * 3 + 3]
    assert r.sizes["n_noisy"].tolist() == [6, 12, 24]  # the noise fraction kept in every subset
    for t in (r.sizes, r.widths):
        np.testing.assert_allclose(t["acc_gap"], t["train_acc"] - t["val_acc"], atol=1e-12)
        np.testing.assert_allclose(t["loss_gap"], t["val_loss"] - t["train_loss"], rtol=1e-5)
        assert ((t["acc_gap_ci_low"] <= t["acc_gap"]) & (t["acc_gap"] <= t["acc_gap_ci_high"])).all()
        assert t["noisy_memorized"].between(0, 1).all() and (t["model_epochs"] == 3 * 2).all()
    for name in ("gap_vs_train_size.png", "gap_vs_width.png"):
        assert (tmp_path.glob(f"*/{name}")).__next__().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = r.study_dir
    pd.testing.assert_frame_equal(pd.read_csv(f"{d}/sizes.csv"), r.sizes, check_dtype=False)
    saved = json.loads(Path(d, "result.json").read_text())
    assert [row["width"] for row in saved["widths"]] == [4, 32] and saved["figures"]["sizes"].endswith(".png")

    # the whole-pool point of the size curve is the same job as the default width point would be:
    # a rerun (even with the curves swapped around) trains nothing new
    p2 = Recording()
    r2 = sweep(small, "mlp", train_sizes="30,60,all", widths="4,32", folds=3, label_noise=0.2, width=16,
               runs_dir=tmp_path, progress=p2, **FAST)
    assert p2.starts == [(0, 5, 5)]
    pd.testing.assert_frame_equal(r.sizes, r2.sizes)


def test_subset_keeps_classes_and_noise_fraction(small):
    ds = flip_labels(small, 0.25, seed=0)
    idx = subset_index(ds.clean_labels, ds.noisy_mask, 40, seed=0)
    assert len(idx) == len(set(idx)) == 40 and (np.diff(idx) > 0).all()
    assert ds.noisy_mask[idx].sum() == 10
    expected = np.bincount(ds.clean_labels) * 40 / 120  # class proportions, up to rounding
    assert np.abs(np.bincount(ds.clean_labels[idx]) - expected).max() < 1
    np.testing.assert_array_equal(subset_index(ds.clean_labels, ds.noisy_mask, 120, seed=0), np.arange(120))


def test_only_one_curve(tmp_path, small):
    r = sweep(small, "mlp", train_sizes="all", widths=None, folds=2, runs_dir=tmp_path, **FAST)
    assert r.widths is None and len(r.sizes) == 1 and "noisy_memorized" not in r.sizes
    assert set(r.figures) == {"sizes"}


@pytest.mark.parametrize(("kw", "match"), [
    (dict(train_sizes="30,500"), r"train size 500 is larger than the training pool \(120 examples\)"),
    (dict(train_sizes="8"), "train size 8 is too small for 3-fold cross-validation of 3 classes: need at least 9"),
    (dict(train_sizes="ten"), "train size must be a whole number or 'all', got 'ten'"),
    (dict(train_sizes="0"), "train size must be >= 1, got 0"),
    (dict(widths="0"), "width must be >= 1, got 0"),
    (dict(widths="8,x"), "width must be a whole number, got 'x'"),
    (dict(train_sizes=None, widths=None), "nothing to sweep"),
    (dict(train_size=500), "train size 500 is larger than the training pool"),
    (dict(folds=0), "folds must be >= 1, got 0"),
    (dict(label_noise=-0.1), r"label noise must be in \[0.0, 1.0\)"),
])
def test_bad_input_raises_before_writing(tmp_path, small, kw, match):
    runs = tmp_path / "runs"
    with pytest.raises(InvalidInputError, match=match):
        sweep(small, "mlp", **{"train_sizes": "30,all", "widths": "8", "folds": 3, **kw}, runs_dir=runs, **FAST)
    assert not runs.exists()


def test_width_sweep_refuses_a_custom_model(tmp_path, small):
    from torch import nn

    with pytest.raises(InvalidInputError, match="a width sweep needs a built-in model"):
        sweep(small, lambda: nn.Linear(8, 3), train_sizes="all", widths="8", runs_dir=tmp_path / "r", **FAST)
    assert not (tmp_path / "r").exists()
