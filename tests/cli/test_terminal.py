"""The CLI as a terminal shows it: 80 and 120 columns, --version, --quiet, Ctrl-C halfway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import run_cli

COMPARE = ["compare", "--data", "synthetic", "--train-size", "120", "--epochs", "3", "--width", "16",
           "--techniques", "baseline,dropout,l2=0.5,augment+dropout=0.3", "--folds", "3", "--label-noise", "0.2"]
MEMORIZATION = ["memorization", "--data", "synthetic", "--train-size", "60", "--epochs", "2", "--width", "16",
                "--models", "24", "--chunk", "12", "--techniques", "baseline,dropout", "--label-noise", "0.1"]


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _json_then_table(args, runs, columns):
    """The study's JSON, then its tables at ``columns`` (from the stored jobs): no line wider, no "…"."""
    result = json.loads(run_cli(*args, *runs, "--json").stdout)
    proc = run_cli(*args, *runs, env={"COLUMNS": str(columns)})
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout and max(len(line) for line in proc.stdout.splitlines()) <= columns
    return result, proc.stdout


@pytest.mark.parametrize("columns", [80, 120])
def test_compare_table_shows_every_key_number(tmp_path, columns):
    r, stdout = _json_then_table(COMPARE, ["--runs-dir", str(tmp_path)], columns)
    for row in r["table"]:
        line = next(line for line in stdout.splitlines() if row["technique"] in line)
        for value in (_pct(row["val_acc"]), _pct(row["noisy_memorized"])):
            assert value in line, (value, line)


@pytest.mark.parametrize("columns", [80, 120])
def test_memorization_and_diagnose_tables_fit(tmp_path, columns):
    runs = ["--runs-dir", str(tmp_path)]
    m, stdout = _json_then_table(MEMORIZATION, runs, columns)
    for cell in m["cells"]:
        s = m["summaries"][cell]
        line = next(line for line in stdout.splitlines() if line.startswith(f"│ {cell} "))
        assert f"{s['mean_score']:.3f}" in line and _pct(s["attacks"]["lira_online"]["tpr_at_1pct"]) in line
        for row in s["top_memorized"]:
            assert f"│ {row['id']} " in stdout  # the top table names each example by its id
    d = run_cli("diagnose", "--data", "synthetic", "--epochs", "4", *runs, env={"COLUMNS": str(columns)})
    assert d.returncode == 0 and "…" not in d.stdout
    assert max(len(line) for line in d.stdout.splitlines()) <= columns
    for header in ("epoch", "train", "val", "test", "gap"):
        assert header in d.stdout


def test_version_and_quiet(tmp_path):
    from rotelab import __version__

    v = run_cli("--version")
    assert v.returncode == 0 and v.stdout.strip() == f"rotelab {__version__}"
    q = run_cli("diagnose", "--data", "synthetic", "--epochs", "2", "--runs-dir", str(tmp_path), "--quiet")
    assert q.returncode == 0 and q.stderr == "" and "verdict:" in q.stdout


def _start(args, cwd):
    env = {**os.environ, "COLUMNS": "100", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "rotelab", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_ctrl_c_while_loading_is_one_line(tmp_path):
    proc = _start(["diagnose", "--data", "synthetic", "--runs-dir", str(tmp_path)], tmp_path)
    time.sleep(1.0)  # still importing torch
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() in (
        ["interrupted before any job was trained; rerun the same command to start"],  # still importing
        ["interrupted; every finished job is stored, rerun the same command to resume"])  # the CLI had loaded


def test_ctrl_c_halfway_keeps_finished_jobs_and_the_rerun_resumes(tmp_path):
    args = ["memorization", "--data", "synthetic", "--epochs", "40", "--width", "64", "--models", "40", "--chunk",
            "4", "--runs-dir", str(tmp_path), "--quiet"]
    proc = _start(args, tmp_path)
    deadline = time.time() + 240
    while len(list(tmp_path.glob("*/jobs/*.npz"))) < 6 and time.time() < deadline:  # 60% of 10 jobs
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    stored = int(lines[0].split("interrupted; ")[1].split(" of ")[0])
    assert lines[0] == f"interrupted; {stored} of 10 jobs are stored, rerun the same command to resume"
    # a job counts once its record is written, after its file: Ctrl-C between the two leaves a file
    # that the rerun trains again (never half-used)
    assert 5 <= stored <= len(list(tmp_path.glob("*/jobs/*.npz"))) <= stored + 1
    again = run_cli(*args[:-1], "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    r = json.loads(again.stdout)
    assert r["jobs_reused"] == stored and r["jobs_trained"] == 10 - stored


def test_a_damaged_job_file_and_study_json_are_named_and_recomputed(tmp_path):
    args = ["diagnose", "--data", "synthetic", "--epochs", "3", "--runs-dir", str(tmp_path)]
    first = json.loads(run_cli(*args, "--json").stdout)
    study = tmp_path / first["study_dir"].split("/")[-1]
    (job,) = study.glob("jobs/*.npz")
    job.write_bytes(job.read_bytes()[:100])  # truncated, as by a full disk
    (study / "study.json").write_text('{"kind": "diag')  # cut short
    proc = run_cli(*args, "--quiet")
    assert proc.returncode == 0, proc.stderr
    warnings = proc.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: ") for w in warnings), proc.stderr
    assert any(str(study / "study.json") in w for w in warnings)
    assert any(str(job) in w and "trained again" in w for w in warnings)
    again = json.loads(run_cli(*args, "--json").stdout)
    assert again["curves"] == first["curves"] and again["verdict"] == first["verdict"]


def test_sigterm_halfway_says_so_keeps_finished_jobs_and_exits_143(tmp_path):
    """What a batch scheduler (SLURM, Kubernetes) sends before it kills: the same clean stop as Ctrl-C."""
    args = ["memorization", "--data", "synthetic", "--epochs", "30", "--width", "64", "--models", "40", "--chunk",
            "4", "--runs-dir", str(tmp_path), "--quiet"]
    proc = _start(args, tmp_path)
    deadline = time.time() + 240
    while len(list(tmp_path.glob("*/jobs/*.npz"))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("terminated (SIGTERM); ") and lines[0].endswith(
        " of 10 jobs are stored, rerun the same command to resume"), err
    stored = int(lines[0].split("; ")[1].split(" of ")[0])
    assert stored >= 2
