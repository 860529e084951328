"""``rotelab.compare``: the table against hand computation, the paired design, label noise, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rotelab.data.builtin import synthetic
from rotelab.data.noise import flip_labels
from rotelab.errors import InvalidInputError
from conftest import RecordingProgress
from rotelab.store import Store
import rotelab.studies.compare as compare_mod
from rotelab.plan import Examples, Folds
from rotelab.studies.compare import CompareResult, compare
from rotelab.studies.cv import fold_metrics

FAST = dict(epochs=3, width=16, batch_size=32, device="cpu")


@pytest.fixture
def small():
    """90 pool / 30 test examples, 3 classes, 8 features."""
    return synthetic(n_train=90, n_test=30, n_features=8, n_classes=3, seed=1)


Recording = RecordingProgress


def job_arrays(result: CompareResult) -> dict[str, dict[str, np.ndarray]]:
    """Each technique's stored job arrays, found by the job label."""
    store = Store.open(result.study_dir)
    try:
        return {label.split(" / ")[0]: store.load(key) for key, label, _, _ in store.jobs()}
    finally:
        store.close()


# ── the table against hand computation ───────────────────────────────────────────────────
def test_fold_summaries_match_hand_computation(tmp_path, small):
    r = compare(small, "mlp", techniques="baseline,l2=0.5,label-smoothing", folds=3, label_noise=0.25,
                runs_dir=tmp_path, **FAST)
    ds = flip_labels(small, 0.25, seed=0)
    clean = np.concatenate([ds.clean_labels, ds.y_test])
    given = np.concatenate([ds.y_train, ds.y_test])
    n_pool, n = ds.n_train, len(given)
    with np.load(f"{r.study_dir}/folds.npz") as f:
        train, val, seeds = f["train_mask"], f["val_mask"], f["seeds"]
    assert train.shape == val.shape == (3, n) and seeds.tolist() == [0, 1, 2]
    assert not train[:, n_pool:].any() and not val[:, n_pool:].any()  # the test split is never a fold
    arrays = job_arrays(r)
    assert set(arrays) == {"baseline", "l2=0.5", "label-smoothing=0.1"}

    hand = {}
    for label, a in arrays.items():
        rows = []
        for k in range(3):
            tr, va = train[k], val[k]
            flipped = given != clean
            rows.append({
                "train_acc": np.mean(a["pred"][k, tr] == given[tr]),
                "train_loss": np.mean(a["loss"][k, tr]),
                "val_acc": np.mean(a["pred"][k, va] == clean[va]),
                "val_loss": np.mean(a["loss"][k, va & ~flipped]),
                "test_acc": np.mean(a["pred"][k, n_pool:] == given[n_pool:]),
                "noisy_memorized": np.mean(a["pred"][k, tr & flipped] == given[tr & flipped]),
            })
        hand[label] = pd.DataFrame(rows)
        np.testing.assert_allclose(r.per_fold[label]["val_acc"], hand[label]["val_acc"])
        np.testing.assert_allclose(r.per_fold[label]["noisy_memorized"], hand[label]["noisy_memorized"])

    t = r.table.set_index("technique")
    for label, h in hand.items():
        row = t.loc[label]
        v = h["val_acc"].to_numpy()
        # Nadeau & Bengio's variance factor 1/n + n_test/n_train (3-fold: 1/3 + 1/2): overlapping folds
        half = stats.t.ppf(0.975, 2) * v.std(ddof=1) * math.sqrt(1 / 3 + 1 / 2)
        assert row["val_acc"] == pytest.approx(v.mean())
        assert row["val_acc_ci_low"] == pytest.approx(max(v.mean() - half, 0.0))  # cut to what an accuracy can be
        assert row["val_acc_ci_high"] == pytest.approx(min(v.mean() + half, 1.0))
        assert row["train_acc"] == pytest.approx(h["train_acc"].mean())
        assert row["acc_gap"] == pytest.approx((h["train_acc"] - h["val_acc"]).mean())
        assert row["loss_gap"] == pytest.approx((h["val_loss"] - h["train_loss"]).mean(), rel=1e-5)
        assert row["test_acc"] == pytest.approx(h["test_acc"].mean())
        assert row["noisy_memorized"] == pytest.approx(h["noisy_memorized"].mean())
        assert row["model_epochs"] == 3 * 3
        # Nadeau & Bengio: var factor 1/n + n_test/n_train, n_test/n_train = 1/(k-1) for k-fold
        d = v - hand["baseline"]["val_acc"].to_numpy()
        assert row["delta_val_acc"] == pytest.approx(d.mean())
        if label == "baseline":
            assert np.isnan(row["p_value"])  # not tested against itself
        elif np.all(d == d[0]):
            assert row["p_value"] == (1.0 if d[0] == 0 else 0.0)
        else:
            tstat = d.mean() / math.sqrt((1 / 3 + 1 / 2) * d.var(ddof=1))
            assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(tstat), 2))
        assert row["delta_noisy_memorized"] == pytest.approx(
            (h["noisy_memorized"] - hand["baseline"]["noisy_memorized"]).mean())
    assert t["best"].sum() == 1 and t["val_acc"].idxmax() == r.best and t.loc[r.best, "best"]
    assert r.test == "corrected_t" and r.test_train_ratio == pytest.approx(0.5)

    csv = pd.read_csv(f"{r.study_dir}/table.csv")
    assert list(csv["technique"]) == list(r.table["technique"])
    np.testing.assert_allclose(csv["val_acc"], r.table["val_acc"])
    saved = json.loads(Path(r.study_dir, "result.json").read_text())
    assert saved["best"] == r.best and len(saved["table"]) == 3


# ── label-noise columns on a tiny hand-made case ─────────────────────────────────────────
def test_fold_metrics_on_a_tiny_case():
    # 6 pool examples (0..5) and 2 test examples; example 1 and 4 were flipped.
    clean = np.array([0, 1, 1, 0, 2, 2, 0, 1])
    given = np.array([0, 2, 1, 0, 0, 2, 0, 1])
    ex = Examples(x=np.zeros((8, 1), np.float32), y=given, clean=clean, test_mask=np.arange(8) >= 6, n_pool=6,
                  n_classes=3, kind="vector", fingerprint="tiny")
    train = np.array([[1, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 0, 0]], dtype=bool)
    val = np.array([[0, 0, 0, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]], dtype=bool)
    flipped = given != clean
    f = Folds(train, val, val & ~flipped, np.array([0, 1]))
    pred = np.array([[0, 2, 1, 0, 2, 0, 0, 0],   # fold 0 fits the flipped label 1 -> memorized 1/1
                     [0, 1, 1, 0, 2, 2, 0, 1]])  # fold 1 predicts the clean label of flipped 4 -> 0/1
    loss = np.arange(16, dtype=float).reshape(2, 8)
    out = {"pred": pred, "correct": pred == given, "loss": loss}
    m = fold_metrics(out, f, ex, noisy=True)
    np.testing.assert_allclose(m["noisy_memorized"], [1.0, 0.0])
    np.testing.assert_allclose(m["train_acc"], [3 / 3, 2 / 3])  # on the labels trained on
    np.testing.assert_allclose(m["val_acc"], [2 / 3, 3 / 3])  # on clean labels, flipped included
    np.testing.assert_allclose(m["val_loss"], [(3 + 5) / 2, (8 + 10) / 2])  # unflipped only
    np.testing.assert_allclose(m["train_loss"], [1.0, 12.0])
    np.testing.assert_allclose(m["test_acc"], [0.5, 1.0])
    np.testing.assert_allclose(m["acc_gap"], m["train_acc"] - m["val_acc"])
    np.testing.assert_allclose(m["loss_gap"], m["val_loss"] - m["train_loss"])
    assert "noisy_memorized" not in fold_metrics(out, f, ex, noisy=False)


# ── paired design ────────────────────────────────────────────────────────────────────────
def test_every_cell_gets_the_same_folds_and_seeds(tmp_path, small, monkeypatch):
    seen = []
    real = compare_mod.run_jobs

    def spy(jobs, examples, **kw):
        seen.extend((j, j.model.fingerprint) for j in jobs)
        return real(jobs, examples, **kw)

    monkeypatch.setattr(compare_mod, "run_jobs", spy)
    r = compare(small, "mlp", techniques="baseline,dropout=0.3,l1,early-stop=2", folds=3, repeats=2,
                runs_dir=tmp_path, **FAST)
    assert len(seen) == 4 and len(r.table) == 4
    first = seen[0][0]
    for job, _ in seen[1:]:
        assert job.job_seed == first.job_seed
        np.testing.assert_array_equal(job.members.seeds, first.members.seeds)
        np.testing.assert_array_equal(job.members.train_mask, first.members.train_mask)
        np.testing.assert_array_equal(job.members.val_mask, first.members.val_mask)
    m = first.members
    assert m.k == 6 and not (m.train_mask & m.val_mask).any()
    for rep in range(2):  # within a repeat every pool example is validated exactly once
        np.testing.assert_array_equal(m.val_mask[3 * rep: 3 * rep + 3, :90].sum(0), np.ones(90))
    # dropout changes the architecture, so that cell runs with its own model
    fps = {job.label.split(" / ")[0]: fp for job, fp in seen}
    assert fps["dropout=0.3"] != fps["baseline"] == fps["l1=0.001"]
    assert r.table.set_index("technique").loc["early-stop=2", "model_epochs"] <= 6 * 3


def test_single_split_with_repeats_and_no_baseline(tmp_path, small):
    r = compare(small, "mlp", techniques="l2,label-smoothing=0.2", folds=1, repeats=2, runs_dir=tmp_path, **FAST)
    assert r.baseline is None and "delta_val_acc" not in r.table and "p_value" not in r.table
    assert "noisy_memorized" not in r.table
    assert all(len(v["val_acc"]) == 2 for v in r.per_fold.values())
    assert r.test_train_ratio == pytest.approx(0.25)  # 20% validation / 80% training


# ── resume ───────────────────────────────────────────────────────────────────────────────
def test_second_run_trains_nothing(tmp_path, small, monkeypatch):
    kw = dict(techniques="baseline,dropout,l2", folds=3, label_noise=0.2, runs_dir=tmp_path, **FAST)
    p1 = Recording()
    r1 = compare(small, "mlp", progress=p1, **kw)
    assert p1.starts == [(3 * 3, 0, 3)]

    def boom(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr("rotelab.engine.train.train_job", boom)
    p2 = Recording()
    r2 = compare(small, "mlp", progress=p2, **kw)
    assert p2.starts == [(0, 3, 3)] and r2.study_dir == r1.study_dir
    pd.testing.assert_frame_equal(r1.table, r2.table)


# ── bad input: one clear error, nothing written ──────────────────────────────────────────
@pytest.mark.parametrize(("kw", "match"), [
    (dict(techniques="baseline,foo"), "unknown technique 'foo'"),
    (dict(techniques="dropout=1"), r"dropout strength must be in \[0.0, 1.0\), got 1.0"),
    (dict(techniques="l1=-1"), "l1 strength must be in"),
    (dict(techniques="l2=-0.1"), "l2 strength must be in"),
    (dict(techniques="baseline,cutmix"), "cutmix needs images or sequences"),
    (dict(techniques="augment=rotate"), "augmentation 'rotate' does not apply to vector data"),
    (dict(folds=0), "folds must be >= 1, got 0"),
    (dict(folds=27), r"folds=27 is more than the 26 samples of the smallest class \(class 'class2' \(label 2\)\)"),
    (dict(repeats=0), "repeats must be >= 1, got 0"),
    (dict(label_noise=1.0), r"label noise must be in \[0.0, 1.0\)"),
])
def test_bad_input_raises_before_writing(tmp_path, small, kw, match):
    runs = tmp_path / "runs"
    with pytest.raises(InvalidInputError, match=match):
        compare(small, "mlp", runs_dir=runs, **{**FAST, "techniques": "baseline", **kw})
    assert not runs.exists()


def test_dropout_technique_refuses_a_custom_model(tmp_path, small):
    from torch import nn

    with pytest.raises(InvalidInputError, match="the model is your own nn.Module factory"):
        compare(small, lambda: nn.Linear(8, 3), techniques="baseline,dropout", runs_dir=tmp_path / "r", **FAST)
    assert not (tmp_path / "r").exists()
