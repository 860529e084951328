"""``rotelab.adapt``: the inner split, the rows and their compute, selection, the goal, errors, CLI, report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import RecordingProgress, run_main
from rotelab.commands.options import out
from rotelab.data.builtin import synthetic
from rotelab.data.noise import flip_labels
from rotelab.errors import InvalidInputError
from rotelab.plan import Examples, inner_split, make_folds
from rotelab.store import Store
from rotelab.studies.adapt import _choose, adapt, goal, spread
from rotelab.measures.folds import paired_difference
from rotelab.studies.adapt_goal import goal_lines
from rotelab.techniques import parse_cell

FAST = dict(epochs=6, width=16, batch_size=32, device="cpu", grid=4, period=2)


@pytest.fixture
def small():
    """120 pool / 30 test examples, 3 classes, 8 features."""
    return synthetic(n_train=120, n_test=30, n_features=8, n_classes=3, seed=1)


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_the_inner_validation_split_never_overlaps_the_scoring_fold(small, noise):
    ex = Examples.of(flip_labels(small, noise, seed=0) if noise else small)
    f = make_folds(ex, pool_idx=np.arange(ex.n_pool), folds=4, repeats=1, seed=3)
    inner = inner_split(f, ex, fraction=0.25, seed=3)
    assert not (inner.val & f.val).any() and not (inner.train & f.val).any()
    assert not (inner.train & inner.val).any()
    np.testing.assert_array_equal(inner.train | inner.val, f.train)  # carved from the training part, all of it
    assert not (inner.val & ex.test_mask).any()
    np.testing.assert_allclose(inner.val.sum(1) / f.train.sum(1), 0.25, atol=0.01)
    for row in inner.val:  # stratified on the labels as given: every class in every inner split
        assert len(np.unique(ex.y[row])) == 3
    members = inner.members(np.arange(8), 2)
    np.testing.assert_array_equal(members.val_mask[2], inner.val[1])  # member f·P + j is fold f's
    assert not (members.val_mask & np.repeat(f.val, 2, axis=0)).any()
    again = inner_split(f, ex, fraction=0.25, seed=3)
    np.testing.assert_array_equal(again.val, inner.val)  # seeded
    with pytest.raises(InvalidInputError, match="too few for 3 classes"):
        inner_split(f, ex, fraction=0.02, seed=3)


def test_adapt_rows_compute_schedules_and_stored_splits(tmp_path, small):
    r = adapt(small, "mlp", label_noise=0.2, folds=3, runs_dir=tmp_path, **FAST)
    t = r.table.set_index("row")
    assert list(t.index) == ["baseline", "grid (best on CV)", "grid (inner val)", "random (inner val)",
                             "pbt ½", "pbt ½ replay", "pbt 1×", "pbt 1× replay", "gap ¼", "gap ¼ replay",
                             "gap 1×", "gap 1× replay", "awd ¼", "awd 1×"]
    grid_epochs = 3 * 4 * 6
    assert t.loc["grid (best on CV)", "model_epochs"] == grid_epochs == t.loc["random (inner val)", "model_epochs"]
    # a population of 2 is ½ of a 4-point grid: the label says the share it got, not the ¼ it was asked
    assert t.loc["pbt ½", "model_epochs"] == 3 * 2 * 6 and t.loc["pbt ½", "compute"] == 0.5
    assert t.loc["gap ¼", "compute"] == 0.25 and t.loc["awd ¼", "compute"] == 0.25
    assert t.loc["pbt 1× replay", "model_epochs"] == grid_epochs + 3 * 6
    assert t.loc["baseline", "final_strength"] == 0 and np.isnan(t.loc["grid (best on CV)", "p_value"])
    assert ((t["val_acc"] >= 0) & (t["val_acc"] <= 1)).all() and t["noisy_memorized"].notna().all()
    for label, sched in r.schedules.items():
        assert np.asarray(sched).shape == (3, 6), label
    assert np.allclose(r.schedules["grid (best on CV)"], r.schedules["grid (best on CV)"][0][0])  # one point
    # the replay trained along the lineage of the chosen PBT member
    np.testing.assert_allclose(r.schedules["pbt 1× replay"], r.schedules["pbt 1×"], rtol=1e-6)
    assert set(r.goal) == {"reference", "grid_best_val_acc", "quarter", "equal", "met", "nested"}
    assert r.goal["nested"]["grid_best_val_acc"] == t.loc["grid (inner val)", "val_acc"]
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["technique"] == "l2" and len(d["grid_values"]) == 4
    stored = np.load(f"{r.study_dir}/folds.npz")
    assert not (stored["inner_val"] & stored["val_mask"]).any()
    assert not (stored["inner_train"] & stored["val_mask"]).any()
    store = Store.open(r.study_dir)
    try:
        arrays = {label.split(" / ")[0]: store.load(key) for key, label, _, _ in store.jobs()}
    finally:
        store.close()
    pbt = arrays["adapt pbt@1"]
    assert pbt["strength"].shape == (12, 6) and pbt["parent"].shape == (12, 6)
    assert (pbt["parent"] // 4 == np.arange(12)[:, None] // 4).all()  # copies only within a fold
    assert arrays["adapt awd@0.25"]["awd_lambda"].shape == (3, 6)  # one member per fold: a quarter of 4


def test_a_rerun_trains_nothing_and_gives_the_same_table(tmp_path, small):
    first, second = RecordingProgress(), RecordingProgress()
    a = adapt(small, "mlp", folds=2, schemes="pbt", runs_dir=tmp_path, progress=first, **FAST)
    b = adapt(small, "mlp", folds=2, schemes="pbt", runs_dir=tmp_path, progress=second, **FAST)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert first.starts == [(5 * 6, 0, 5), (2 * 6, 0, 2)]  # baseline, grid, random, pbt x 2; then the replays
    assert second.starts == [(0, 5, 5), (0, 2, 2)]
    assert list(a.table["row"])[-2:] == ["pbt 1×", "pbt 1× replay"]


def test_choose_takes_the_best_inner_validation_accuracy_per_fold_ties_by_loss():
    from rotelab.plan import InnerSplit

    val = np.zeros((2, 4), bool)
    val[:, :2] = True
    inner = InnerSplit(~val, val)
    correct = np.array([[1, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 1]], bool)  # 2 folds x 2 members
    loss = np.array([[0.1, 0.5, 9, 9], [0.2, 0.3, 9, 9], [0.5, 0.5, 9, 9], [0.9, 0.9, 0, 0]])
    np.testing.assert_array_equal(_choose({"correct": correct, "loss": loss}, inner, 2), [1, 3])
    loss[1, :2] = 0.0  # fold 0: tie on accuracy broken by the lower loss
    correct[0] = [1, 1, 0, 0]
    np.testing.assert_array_equal(_choose({"correct": correct, "loss": loss}, inner, 2), [1, 3])


def test_goal_reads_the_bar_from_the_best_grid_point():
    t = pd.DataFrame({"row": ["grid (best on CV)", "pbt ¼", "gap 1×", "awd ¼", "random (inner val)"],
                      "scheme": ["grid", "pbt", "gap", "awd", "random"],
                      "compute": [1.0, 0.25, 1.0, 0.25, 1.0], "val_acc": [0.80, 0.796, 0.81, 0.79, 0.9]})
    g = goal(t)
    assert g["quarter"]["row"] == "pbt ¼" and g["quarter"]["met"]
    assert g["quarter"]["margin_points"] == pytest.approx(0.1)
    assert g["equal"]["row"] == "gap 1×" and g["equal"]["met"] and g["met"]
    assert "nested" not in g  # no grid (inner val) row here
    t.loc[1, "val_acc"] = 0.79
    t.loc[2, "val_acc"] = 0.80
    g = goal(t)
    assert not g["quarter"]["met"] and g["quarter"]["margin_points"] == pytest.approx(-0.5)
    assert not g["equal"]["met"] and not g["met"]  # equal to the bar is not above it


def test_goal_lines_say_met_in_the_mean_only_when_the_test_does_not_back_it():
    t = pd.DataFrame({"row": ["grid (best on CV)", "pbt ¼", "gap 1×", "grid (inner val)"],
                      "scheme": ["grid", "pbt", "gap", "grid"], "compute": [1.0, 0.25, 1.0, 1.0],
                      "val_acc": [0.80, 0.797, 0.802, 0.79], "p_value": [np.nan, 0.6, 0.83, 0.2]})
    lines = goal_lines(goal(t))
    assert lines[0] == ("goal at ≤ ¼ of the grid's compute, within 0.5 points of grid (best on CV): met by pbt ¼, "
                        "79.7% vs 80.0% (Δ -0.3 points, p = 0.6; the only adaptive row at that compute)")
    assert lines[1].startswith("goal at ≤ the grid's compute, above grid (best on CV): met in the mean only "
                               "(not significant) by gap 1×, 80.2% vs 80.0% (Δ +0.2 points, p = 0.83;")
    assert lines[3] == ("goal at ≤ the grid's compute, above grid (inner val): met by gap 1×, 80.2% vs 79.0% "
                        "(Δ +1.2 points)")  # no folds given, so no test against the nested reference
    folds = {"grid (inner val)": {"val_acc": [0.78, 0.80, 0.79]}, "gap 1×": {"val_acc": [0.80, 0.79, 0.817]},
             "pbt ¼": {"val_acc": [0.79, 0.80, 0.80]}}
    g = goal(t, per_fold=folds, test_train_ratio=0.5)
    p = paired_difference(folds["grid (inner val)"]["val_acc"], folds["gap 1×"]["val_acc"], test_train_ratio=0.5)
    assert g["nested"]["equal"]["p_value"] == pytest.approx(p.p_value) and p.p_value > 0.05
    assert "above grid (inner val): met in the mean only (not significant) by gap 1×" in goal_lines(g)[3]
    t.loc[2, "p_value"] = 0.01
    t.loc[1, "val_acc"] = 0.79
    lines = goal_lines(goal(t))
    assert "met by gap 1×" in lines[1]
    assert "missed; the best was pbt ¼, 79.0% vs 80.0% (Δ -1.0 points" in lines[0]


def test_spread_covers_the_range_with_or_without_its_ends():
    np.testing.assert_allclose(spread(0.01, 1.0, 3, log=True, ends=True), [0.01, 0.1, 1.0])
    np.testing.assert_allclose(spread(0.0, 0.8, 2, log=False, ends=False), [0.2, 0.6])
    np.testing.assert_allclose(spread(0.01, 1.0, 1, log=True, ends=False), [0.1])


@pytest.mark.parametrize("options,message", [
    (dict(technique="l3"), "unknown technique 'l3'"),
    (dict(schemes="pbt,sgdr"), "unknown adaptive scheme 'sgdr'"),
    (dict(low=2.0, high=1.0), "needs low < high, got low 2.0 and high 1.0"),
    (dict(low=0.0), "log scale: low must be > 0"),
    (dict(technique="dropout", high=1.0), "dropout must stay below 1"),
    (dict(technique="augment", high=1.5), "high must be <= 1"),
    (dict(period=6), "period 6 leaves no pbt step inside 6 epochs"),
    (dict(gap_period=7, schemes="gap"), "gap period 7 leaves no gap step inside 6 epochs"),
    (dict(gap_period=0), "gap period must be >= 1"),
    (dict(folds=1), "folds must be >= 2"),
    (dict(grid=2), "grid must be >= 4"),
    (dict(inner_fraction=1.0), r"inner fraction must be in \(0.0, 1.0\)"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, small, options, message):
    with pytest.raises(InvalidInputError, match=message):
        adapt(small, "mlp", runs_dir=tmp_path, **{**FAST, **options})
    assert not any(tmp_path.iterdir())


def test_adaptive_awd_is_a_technique_of_every_study():
    assert parse_cell("adaptive=awd").parts == (("adaptive", "awd:0.1"),)
    cell = parse_cell("adaptive=awd:0.3+dropout=0.2")
    assert cell.label == "adaptive=awd:0.3+dropout=0.2"
    from rotelab.engine import Recipe

    assert cell.apply(Recipe(), kind="vector").awd == 0.3
    for text, message in (("adaptive=pbt", "run it with `rotelab adapt --schemes pbt`"),
                          ("adaptive=gap", "needs a population per fold"),
                          ("adaptive=sgdr", "unknown adaptive scheme 'sgdr'"),
                          ("adaptive=awd:x", "strength must be a number"),
                          ("adaptive=awd:0", r"must be in \[1e-09")):
        with pytest.raises(InvalidInputError, match=message):
            parse_cell(text)


@pytest.fixture
def wide_console(monkeypatch):
    monkeypatch.setattr(out, "_width", 200)


def test_adapt_command_table_json_and_report(tmp_path, capsys, wide_console):
    argv = ["adapt", "--data", "synthetic", "--train-size", "90", "--epochs", "4", "--width", "8", "--batch-size",
            "32", "--device", "cpu", "--folds", "2", "--grid", "4", "--period", "1", "--schemes", "gap,awd",
            "--technique", "dropout", "--label-noise", "0.2", "--runs-dir", str(tmp_path)]
    code, text, _ = run_main(argv, capsys)
    assert code in (0, None)
    for piece in ("adapt synthetic", "dropout over 0–0.8", "grid (best on CV)", "gap 1× replay", "awd ¼",
                  "noisy labels", "goal at ≤ ¼ of the grid's compute, within 0.5 points of grid (best on CV)",
                  "above grid (inner val)"):
        assert piece in text
    code, text, _ = run_main([*argv, "--json"], capsys)
    r = json.loads(text)
    assert r["knob"] == "dropout" and "pbt ¼" not in [row["row"] for row in r["table"]]
    code, text, _ = run_main(["report", r["study_dir"]], capsys)
    assert code in (0, None)
    html = (tmp_path / r["study_dir"].split("/")[-1] / "report.html").read_text()
    assert "adapt · synthetic" in html and html.count("data:image/png") == 2 and "grid (best on CV)" in html


def test_lr_weighted_strength_against_a_sum_over_steps():
    """The cosine's mean per epoch, from the integral, against the learning rate of every step."""
    from rotelab.studies.adapt import lr_weighted

    sched = np.array([[1.0, 2.0, 4.0, 8.0], [3.0, 3.0, 3.0, 3.0]])
    steps = 1000  # per epoch: the step-wise cosine of the engine (CosineAnnealingLR) approaches the integral
    t = np.arange(4 * steps)
    lr = 0.5 * (1 + np.cos(np.pi * t / (4 * steps)))
    by_step = (np.repeat(sched, steps, axis=1) @ lr) / lr.sum()
    np.testing.assert_allclose(lr_weighted(sched, "cosine"), by_step, rtol=1e-3)
    assert lr_weighted(sched, "cosine")[0] < sched[0].mean()  # the late, strong epochs count less
    np.testing.assert_allclose(lr_weighted(sched, "constant"), sched.mean(1))
    assert lr_weighted(sched, "cosine")[1] == pytest.approx(3.0)  # a fixed strength is itself
