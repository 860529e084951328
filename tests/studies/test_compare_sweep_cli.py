"""`rotelab compare` and `rotelab sweep` end to end through the CLI entry point."""

from __future__ import annotations

import json

import pytest

from conftest import run_main
from rotelab.commands.options import out

FAST = ["--data", "synthetic", "--train-size", "90", "--model", "mlp", "--epochs", "3", "--width", "16",
        "--batch-size", "32", "--device", "cpu"]
SWEEP = ["--data", "synthetic", "--epochs", "2", "--batch-size", "32", "--device", "cpu", "--folds", "2"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setattr(out, "_width", 200)  # rich tables unwrapped, as in a wide terminal


run = run_main


def test_compare_json_then_table_from_the_store(tmp_path, capsys):
    argv = ["compare", *FAST, "--techniques", "baseline,l2=0.5,dropout=0.2", "--folds", "3", "--label-noise", "0.2",
            "--runs-dir", str(tmp_path)]
    code, out, _ = run([*argv, "--json"], capsys)
    assert code in (0, None)
    r = json.loads(out)
    assert [row["technique"] for row in r["table"]] == ["baseline", "l2=0.5", "dropout=0.2"]
    assert sum(row["best"] for row in r["table"]) == 1 and r["baseline"] == "baseline"
    assert [row["technique"] for row in r["table"] if row["recommended"]] == ([r["recommended"]] if r["recommended"]
                                                                               else [])
    assert r["table"][0]["p_value"] is None and 0 <= r["table"][1]["noisy_memorized"] <= 1  # not tested vs itself
    assert {d["name"] for d in r["defaults"]} == {"l2", "dropout"}
    assert (tmp_path / r["study_dir"].split("/")[-1] / "table.csv").is_file()

    code, out, err = run(argv, capsys)  # same study: rendered from stored jobs
    assert code in (0, None)
    assert "reusing 3 of 3" in err
    for text in ("technique defaults", "noisy labels", "memorized", "Nadeau–Bengio", "l2=0.5"):
        assert text in out
    beats = [row for row in r["table"] if row["technique"] != "baseline" and row["p_holm"] < 0.05
             and row["delta_val_acc"] > 0]
    significant = bool(beats)  # ★ only for a cell that beats the baseline after Holm's adjustment
    assert (r["recommended"] is not None) == significant and ("★" in out) == significant
    assert ("no technique beats baseline significantly" in out) == (not significant)


def test_sweep_json(tmp_path, capsys):
    code, out, _ = run(["sweep", *SWEEP, "--train-sizes", "60,all", "--widths", "8", "--runs-dir", str(tmp_path),
                        "--json"], capsys)
    assert code in (0, None)
    r = json.loads(out)
    assert [row["train_size"] for row in r["sizes"]] == [60, 300] and [row["width"] for row in r["widths"]] == [8]
    assert set(r["figures"]) == {"sizes", "widths"}


def test_sweep_table(tmp_path, capsys):
    code, out, _ = run(["sweep", *SWEEP, "--train-sizes", "all", "--widths", "", "--runs-dir", str(tmp_path)], capsys)
    assert code in (0, None)
    assert "gap vs training-set size" in out and "gap vs width" not in out and "gap_vs_train_size.png" in out


@pytest.mark.parametrize(("args", "match"), [
    (["compare", "--techniques", "baseline,nope"], "unknown technique 'nope'"),
    (["compare", "--techniques", "baseline,dropout=1"], "dropout strength must be in [0.0, 1.0), got 1.0"),
    (["compare", "--techniques", "l1=-1"], "l1 strength must be in [0.0, inf], got -1.0"),
    (["compare", "--folds", "0"], "folds must be >= 1, got 0"),
    (["compare", "--folds", "40"], "folds=40 is more than the 22 samples of the smallest class (class 'class0' (label 0))"),
    (["sweep", "--train-sizes", "20,5000"], "train size 5000 is larger than the training pool (300 examples)"),
    (["sweep", "--train-sizes", "all", "--widths", "0"], "width must be >= 1, got 0"),
    (["sweep", "--train-sizes", "5"], "train size 5 is too small for 2-fold cross-validation of 4 classes"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, match):
    runs = tmp_path / "runs"
    common = FAST if args[0] == "compare" else SWEEP
    code, out, err = run([args[0], *common, *args[1:], "--runs-dir", str(runs)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and match in err and err.count("\n") == 1
    assert not runs.exists()
