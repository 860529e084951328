"""`rotelab memorization` end to end through the CLI entry point: JSON, tables, exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_main

FAST = ["--data", "synthetic", "--train-size", "60", "--model", "mlp", "--epochs", "3", "--width", "16",
        "--batch-size", "32", "--device", "cpu"]


run = run_main


def test_json(tmp_path, capsys):
    code, out, _ = run(["memorization", *FAST, "--models", "24", "--chunk", "12", "--label-noise", "0.1",
                        "--runs-dir", str(tmp_path), "--json"], capsys)
    assert code in (0, None)
    r = json.loads(out)
    s = r["summaries"]["baseline"]
    assert r["models"] == 24 and r["jobs_trained"] == 2 and r["cells"] == ["baseline"]
    assert set(s["attacks"]) == {"loss", "lira_online", "lira_offline", "rmia_online", "rmia_offline"} and s["n_flipped"] == 6
    assert (Path(r["study_dir"]) / "scores_baseline.parquet").is_file()


def test_tables_per_technique(tmp_path, capsys):
    code, out, _ = run(["memorization", *FAST, "--models", "24", "--chunk", "24", "--techniques",
                        "baseline,l2=0.5", "--runs-dir", str(tmp_path)], capsys)
    assert code in (0, None)
    for text in ("by technique", "memorization scores", "most memorized", "stability", "membership inference",
                 "LiRA online", "LiRA offline", "loss threshold", "l2=0.5"):
        assert text in out


@pytest.mark.parametrize(("args", "match"), [
    (["--models", "1"], "use at least "),
    (["--subset", "0"], "subset must be in (0.0, 1.0), got 0.0"),
    (["--subset", "1.5"], "subset must be in (0.0, 1.0), got 1.5"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, match):
    runs = tmp_path / "runs"
    code, out, err = run(["memorization", *FAST, *args, "--runs-dir", str(runs)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and match in err and err.count("\n") == 1
    assert not runs.exists()
