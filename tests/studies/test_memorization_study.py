"""End-to-end tests of ``rotelab.memorization`` on tiny seeded data: outputs, files, resume,
adding models, determinism, planted label noise, and the input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rotelab.data.builtin import synthetic
from rotelab.data.dataset import make_dataset
from rotelab.errors import InvalidInputError
from rotelab.measures.memorization import influence_scores, memorization_scores
from rotelab.store import Store
from rotelab.plan import subset_masks
from rotelab.studies.memorization import MemorizationResult, memorization

SCORE_COLUMNS = ["id", "pool_index", "given_label", "given_class", "clean_label", "clean_class", "predicted_label",
                 "predicted_class", "score", "stderr", "n_in", "n_out", "p_in", "p_out", "vulnerability", "label_issue",
                 "issue_probability", "label_quality", "suggested_label", "suggested_class", "suggestion_confidence",
                 "flipped"]
FAST = {"epochs": 4, "width": 16, "batch_size": 32, "device": "cpu"}


@pytest.fixture
def tiny():
    """80 training / 40 test examples, 4 classes, 8 features."""
    return synthetic(n_train=80, n_test=40, n_features=8, n_classes=4, seed=3)


@pytest.fixture
def separable():
    """100 training examples in 64 dimensions, 4 well-separated clusters: clean examples are
    learned from their neighbours, so only a flipped label has to be memorized."""
    rng = np.random.default_rng(11)
    centers = rng.normal(0.0, 1.0, (4, 64))
    y = np.arange(180) % 4
    x = (centers[y] + rng.normal(0.0, 1.0, (180, 64))).astype(np.float32)
    return make_dataset("separable", x[:100], y[:100], x[100:], y[100:])


def test_outputs_files_and_shapes(tiny, tmp_path):
    r = memorization(tiny, "mlp", models=24, chunk=8, label_noise=0.1, runs_dir=tmp_path, **FAST)
    assert isinstance(r, MemorizationResult)
    assert r.cells == ["baseline"] and r.jobs_trained == 3 and r.jobs_reused == 0
    df = r.scores["baseline"]
    assert list(df.columns) == SCORE_COLUMNS and len(df) == 80
    assert df["pool_index"].tolist() == list(range(80))
    np.testing.assert_array_equal(df["id"], tiny.train_ids)  # the example's id in the user's source
    assert (df["n_in"] + df["n_out"] == 24).all() and (df["n_in"] > 0).all() and (df["n_out"] > 0).all()
    assert df["score"].between(-1, 1).all() and np.isfinite(df["stderr"]).all()
    assert df["flipped"].sum() == 8 and (df["given_label"] != df["clean_label"]).sum() == 8
    assert df["predicted_label"].between(0, 3).all()

    study = r.study_dir
    files = r.files["baseline"]
    assert files == {"scores_csv": "scores_baseline.csv", "scores_parquet": "scores_baseline.parquet",
                     "influence": "influence_baseline.csv", "roc": "roc_baseline.csv",
                     "npz": "feldman_zhang_baseline.npz", "examples": "examples_baseline.npz"}
    pd.testing.assert_frame_equal(pd.read_parquet(f"{study}/scores_baseline.parquet"), df)
    csv = pd.read_csv(f"{study}/scores_baseline.csv")
    np.testing.assert_allclose(csv["score"], df["score"])
    pairs = pd.read_csv(f"{study}/influence_baseline.csv")
    assert list(pairs.columns) == ["train_id", "test_id", "influence", "train_label", "train_class", "test_label", "test_class",
                                   "train_score", "train_pool_index", "test_index"]
    np.testing.assert_array_equal(pairs["train_id"], tiny.ids_of(pairs["train_pool_index"]))
    np.testing.assert_array_equal(pairs["test_id"], tiny.ids_of(pairs["test_index"], split="test"))
    assert len(pairs) == 100 and pairs["influence"].is_monotonic_decreasing
    roc = pd.read_csv(f"{study}/roc_baseline.csv")
    assert sorted(roc["attack"].unique()) == ["lira_offline", "lira_online", "loss", "rmia_offline", "rmia_online"]
    assert (roc.groupby("attack").size() == 200).all() and roc["tpr"].between(0, 1).all()

    with np.load(f"{study}/feldman_zhang_baseline.npz") as f:
        assert {"trainset_mask", "memorization", "influence"} <= set(f.files)
        mask, mem, infl = f["trainset_mask"], f["memorization"], f["influence"]
    assert mask.shape == (24, 80) and mask.dtype == bool and (mask.sum(1) == 56).all()
    assert mem.shape == (80,) and infl.shape == (80, 40) and infl.dtype == np.float32
    np.testing.assert_allclose(mem, df["score"])
    np.testing.assert_array_equal(mask, subset_masks(24, n_pool=80, n_subset=56, seed=0))
    with np.load(f"{study}/examples_baseline.npz") as f:
        np.testing.assert_array_equal(f["top_index"][:10], r.top(10)["pool_index"])
        np.testing.assert_array_equal(f["top_id"][:10], r.top(10)["id"])
        np.testing.assert_array_equal(f["top_x"], tiny.x_train[f["top_index"]])
        assert f["pair_train_x"].shape == (12, 8) and f["pair_test_x"].shape == (12, 8)

    # the scores are the measures applied to the stored per-model outputs
    store = Store.open(study)
    jobs = [store.load(key) for key, *_ in store.jobs()]  # in creation order: models 0-7, 8-15, 16-23
    store.close()
    correct = np.concatenate([j["correct"] for j in jobs])
    np.testing.assert_allclose(memorization_scores(correct[:, :80], mask).score, mem)
    np.testing.assert_allclose(influence_scores(correct[:, 80:], mask), infl, rtol=1e-6)

    s = r.summaries["baseline"]
    assert set(s["attacks"]) == {"loss", "lira_online", "lira_offline", "rmia_online", "rmia_offline"}
    for a in s["attacks"].values():
        assert 0 <= a["tpr_at_0_1pct"] <= a["tpr_at_1pct"] <= 1 and 0 <= a["auc"] <= 1
    assert s["attacks"]["lira_online"]["fixed_variance"] is True  # 24 models: far below 64 shadows per side
    assert 0 <= s["flipped_auc_score"] <= 1 and sum(s["histogram"]["counts"]) == 80
    assert len(s["top_memorized"]) == 10

    saved = json.loads((Path(study) / "result.json").read_text())
    assert saved == json.loads(json.dumps(r.to_dict()))
    assert len(json.dumps(r.to_dict())) < 20_000  # no per-example arrays in the JSON


def test_resume_trains_nothing_and_gives_identical_results(tiny, tmp_path):
    first = memorization(tiny, "mlp", models=24, chunk=8, runs_dir=tmp_path, **FAST)
    store = Store.open(first.study_dir)
    n_jobs = len(store.jobs())
    store.close()
    again = memorization(tiny, "mlp", models=24, chunk=8, runs_dir=tmp_path, **FAST)
    assert (again.jobs_trained, again.jobs_reused) == (0, 3)
    store = Store.open(again.study_dir)
    assert len(store.jobs()) == n_jobs == 3
    store.close()
    pd.testing.assert_frame_equal(first.scores["baseline"], again.scores["baseline"])


def test_more_models_reuse_the_first_chunks(tiny, tmp_path):
    small = memorization(tiny, "mlp", models=24, chunk=8, runs_dir=tmp_path, **FAST)
    big = memorization(tiny, "mlp", models=40, chunk=8, runs_dir=tmp_path, **FAST)
    assert big.study_dir == small.study_dir
    assert (big.jobs_trained, big.jobs_reused) == (2, 3)
    np.testing.assert_array_equal(big.arrays["baseline"]["trainset_mask"][:24],
                                  small.arrays["baseline"]["trainset_mask"])
    assert (big.scores["baseline"]["n_in"] + big.scores["baseline"]["n_out"] == 40).all()
    store = Store.open(big.study_dir)
    assert len(store.jobs()) == 5
    store.close()


def test_same_config_same_scores_in_another_runs_dir(tiny, tmp_path):
    a = memorization(tiny, "mlp", models=24, chunk=12, runs_dir=tmp_path / "a", **FAST)
    b = memorization(tiny, "mlp", models=24, chunk=12, runs_dir=tmp_path / "b", **FAST)
    assert b.jobs_trained == 2
    pd.testing.assert_frame_equal(a.scores["baseline"], b.scores["baseline"])
    assert a.summaries["baseline"]["attacks"] == b.summaries["baseline"]["attacks"]


def test_techniques_share_subsets_and_get_one_entry_each(tiny, tmp_path):
    r = memorization(tiny, "mlp", models=24, chunk=24, techniques="baseline,dropout=0.3", runs_dir=tmp_path,
                     **FAST)
    assert r.cells == ["baseline", "dropout=0.3"] and r.jobs_trained == 2
    np.testing.assert_array_equal(r.arrays["baseline"]["trainset_mask"], r.arrays["dropout=0.3"]["trainset_mask"])
    assert r.files["dropout=0.3"]["npz"] == "feldman_zhang_dropout-0.3.npz"
    assert not r.scores["baseline"]["score"].equals(r.scores["dropout=0.3"]["score"])


def test_flipped_labels_rank_on_top(separable, tmp_path):
    r = memorization(separable, "mlp", models=24, chunk=24, label_noise=0.1, epochs=10, width=32, batch_size=16,
                     lr=1e-2, device="cpu", runs_dir=tmp_path)
    s = r.summaries["baseline"]
    assert s["n_flipped"] == 10
    assert s["accuracy"]["train"] > 0.95  # the models fit their subsets, flipped labels included
    assert s["flipped_auc_score"] >= 0.95
    assert r.top(n=10)["flipped"].mean() >= 0.8
    assert s["flipped_auc_vulnerability"] >= 0.8


# ── input errors: one message naming the fix, nothing written ─────────────────────────


def test_too_few_models_names_how_many(tiny, tmp_path):
    with pytest.raises(InvalidInputError, match=r"use at least \d+ models \(--models \d+\)"):
        memorization(tiny, "mlp", models=1, runs_dir=tmp_path, **FAST)
    with pytest.raises(InvalidInputError, match=r"use at least \d+ models \(--models \d+\)"):
        memorization(tiny, "mlp", models=4, runs_dir=tmp_path, **FAST)
    assert not any(tmp_path.iterdir())


def test_the_suggested_model_count_is_enough(tiny, tmp_path):
    with pytest.raises(InvalidInputError) as info:
        memorization(tiny, "mlp", models=6, subset=0.9, runs_dir=tmp_path, **FAST)
    needed = int(str(info.value).rsplit("(--models ", 1)[1].rstrip(")"))
    mask = subset_masks(needed, n_pool=80, n_subset=72, seed=0)
    n_in = mask.sum(0)
    assert ((n_in > 0) & (n_in < needed)).all()
    n_in = mask[:-1].sum(0)
    assert not ((n_in > 0) & (n_in < needed - 1)).all()


@pytest.mark.parametrize(("subset", "match"), [
    (0.0, r"subset must be in \(0.0, 1.0\), got 0.0"),
    (1.0, r"subset must be in \(0.0, 1.0\), got 1.0"),
    (1.5, r"subset must be in \(0.0, 1.0\), got 1.5"),
    (0.001, "use a larger --subset"),
    (0.999, "use a smaller --subset"),
])
def test_bad_subset(tiny, tmp_path, subset, match):
    with pytest.raises(InvalidInputError, match=match):
        memorization(tiny, "mlp", models=32, subset=subset, runs_dir=tmp_path, **FAST)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("kw", "match"), [
    ({"models": 0}, "models must be >= 1"),
    ({"chunk": 0}, "chunk must be >= 1"),
    ({"techniques": "baseline,nosuch"}, "unknown technique 'nosuch'"),
    ({"techniques": "augment=rotate"}, "does not apply to vector data"),
])
def test_other_bad_inputs(tiny, tmp_path, kw, match):
    with pytest.raises(InvalidInputError, match=match):
        memorization(tiny, "mlp", **{"models": 32, **kw}, runs_dir=tmp_path, **FAST)
    assert not any(tmp_path.iterdir())


def test_custom_model_with_dropout_cell_is_refused(tiny, tmp_path):
    from torch import nn

    def factory():
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    with pytest.raises(InvalidInputError, match="build nn.Dropout into your module"):
        memorization(tiny, factory, models=24, techniques="baseline,dropout", runs_dir=tmp_path, **FAST)
    assert not any(tmp_path.iterdir())
    r = memorization(tiny, factory, models=24, techniques="baseline,l2=0.1", runs_dir=tmp_path, **FAST)
    assert r.cells == ["baseline", "l2=0.1"] and r.model.startswith("custom:")


def test_one_progress_bar_over_every_cell(tiny, tmp_path):
    from rotelab.progress import Progress

    class Record(Progress):
        def __init__(self):
            self.calls, self.epochs = [], 0

        def start(self, *, total, cached, n_jobs):
            self.calls.append(("start", total, cached, n_jobs))

        def advance(self, epochs):
            self.epochs += epochs

        def stop(self):
            self.calls.append(("stop",))

    rec = Record()
    memorization(tiny, "mlp", models=24, chunk=12, techniques="baseline,dropout", runs_dir=tmp_path, progress=rec,
                 **FAST)
    assert rec.calls == [("start", 4 * 4, 0, 4), ("stop",)] and rec.epochs == 16
    rec = Record()
    memorization(tiny, "mlp", models=24, chunk=12, techniques="baseline,dropout", runs_dir=tmp_path, progress=rec,
                 **FAST)
    assert rec.calls == [("start", 0, 4, 4), ("stop",)] and rec.epochs == 0


def test_lira_variance_rule_is_reported_per_variant(tmp_path):
    """With subset 0.3 and 100 models, a target has ~30 "in" and ~69 "out" shadows per example:
    online LiRA (both sides) pools one variance, offline LiRA (the out side only) fits one per
    example. The summary says so per variant, as lira_scores decided it."""
    from rotelab.data.builtin import synthetic
    from rotelab.measures.membership import lira_fixed_variance

    ds = synthetic(n_train=40, n_test=20, n_features=4, n_classes=2, seed=3)
    r = memorization(ds, "mlp", models=100, subset=0.3, epochs=1, width=4, batch_size=32, device="cpu",
                     runs_dir=tmp_path)
    attacks = r.summaries["baseline"]["attacks"]
    assert attacks["lira_online"]["fixed_variance"] is True
    assert attacks["lira_offline"]["fixed_variance"] is False
    assert "fixed_variance" not in attacks["loss"]
    mask = r.arrays["baseline"]["trainset_mask"]
    assert lira_fixed_variance(mask, variant="online") and not lira_fixed_variance(mask, variant="offline")


def test_rmia_label_issues_and_the_ledger(tiny, tmp_path):
    """The study's additions: RMIA beside LiRA, the label flag per example, and with several
    cells the per-example ledger (every pool example in exactly one category)."""
    r = memorization(tiny, "mlp", models=24, chunk=12, label_noise=0.1, techniques="baseline,l2=0.5",
                     runs_dir=tmp_path, **FAST)
    s = r.summaries["baseline"]
    assert set(s["attacks"]) == {"loss", "lira_online", "lira_offline", "rmia_online", "rmia_offline"}
    assert 0 <= s["attacks"]["rmia_offline"]["auc"] <= 1 and s["reference_models"] is None
    df = r.scores["baseline"]
    assert {"label_issue", "issue_probability", "label_quality", "suggested_label", "suggestion_confidence"} <= set(df)
    li = s["label_issues"]
    assert li["flagged"] == int(df["label_issue"].sum()) and {"precision", "recall", "f1"} <= set(li)
    assert (df.loc[~df["label_issue"], "suggested_label"] == df.loc[~df["label_issue"], "given_label"]).all()
    led = r.ledger
    assert led["baseline"] == "baseline" and sum(led["counts"].values()) == 80
    table = pd.read_csv(Path(r.study_dir) / "ledger.csv")
    assert len(table) == 80 and {"category", "score_baseline", "diff_l2-0.5", "diff_low_l2-0.5"} <= set(table)
    np.testing.assert_allclose(table["score_baseline"], df["score"])


def test_few_reference_models(tiny, tmp_path):
    """--reference-models N scores each target with N references; N = 1 leaves out the online
    attacks (they need a reference on each side). The training is the same: jobs are reused."""
    full = memorization(tiny, "mlp", models=24, chunk=12, runs_dir=tmp_path, **FAST)
    one = memorization(tiny, "mlp", models=24, chunk=12, reference_models=1, runs_dir=tmp_path, **FAST)
    four = memorization(tiny, "mlp", models=24, chunk=12, reference_models=4, runs_dir=tmp_path, **FAST)
    assert one.jobs_trained == 0 and four.jobs_trained == 0
    assert set(one.summaries["baseline"]["attacks"]) == {"loss", "lira_offline", "rmia_offline"}
    assert four.summaries["baseline"]["attacks"]["lira_online"]["auc"] != \
        full.summaries["baseline"]["attacks"]["lira_online"]["auc"]
    with pytest.raises(InvalidInputError, match="reference models must be <= 23"):
        memorization(tiny, "mlp", models=24, reference_models=24, runs_dir=tmp_path, **FAST)
