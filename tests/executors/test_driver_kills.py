"""A driver killed with SIGKILL anywhere in a study: the same command resumes, trains only what
is missing (the jobs in flight again, from scratch), ends with the numbers of an uninterrupted
run, and the store's log shows no job trained twice after it was committed."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from executor_helpers import (
    FAST, assert_same_outputs, kill_group, ray_cluster, start_cli, stored_outputs, trained_log, wait_for,  # noqa: F401
)

#: 32 models in 8 jobs of 4: long enough that a kill lands while jobs train.
STUDY = ["memorization", *FAST, "--epochs", "40", "--models", "32", "--chunk", "4", "--json"]
N_JOBS = 8


def _study_dir(runs: Path) -> Path | None:
    found = list(runs.glob("*/store.sqlite"))
    return found[0].parent if found else None


def _trained_so_far(runs: Path) -> int:
    """Rows in the study's training log right now (0 before the study exists)."""
    study = _study_dir(runs)
    if study is None:
        return 0
    try:
        db = sqlite3.connect(f"{(study / 'store.sqlite').as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT count(*) FROM trained").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _complete(runs: Path, *extra: str) -> dict:
    proc = start_cli(*STUDY, "--runs-dir", str(runs), *extra)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out)


def _same_as(reference: dict, result: dict) -> None:
    """The resumed study's numbers equal the uninterrupted one's, bit for bit."""
    assert result["summaries"] == reference["summaries"]
    assert_same_outputs(stored_outputs(reference["study_dir"]), stored_outputs(result["study_dir"]))
    for name in ("scores_baseline.parquet",):
        pd.testing.assert_frame_equal(pd.read_parquet(Path(reference["study_dir"]) / name),
                                      pd.read_parquet(Path(result["study_dir"]) / name))
    with np.load(Path(reference["study_dir"]) / "feldman_zhang_baseline.npz") as a, \
            np.load(Path(result["study_dir"]) / "feldman_zhang_baseline.npz") as b:
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])


def _trained_once(study_dir: str) -> tuple[int, int]:
    """(trainings logged, jobs taken over from a killed driver); fails if a job was trained twice."""
    log = trained_log(study_dir)
    twice = {k: n for k, n in Counter(k for k, *_ in log).items() if n > 1}
    assert twice == {}, f"trained twice: {twice}"
    assert len(log) == N_JOBS
    return len(log), sum(taken is not None for *_, taken in log)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The same study run once in this process, never killed: the numbers every resumed run must
    equal (its JSON, as the CLI prints it)."""
    import rotelab

    r = rotelab.memorization("synthetic", "mlp", train_size=60, width=16, batch_size=32, device="cpu", epochs=40,
                             models=32, chunk=4, runs_dir=tmp_path_factory.mktemp("uninterrupted"), progress=False)
    return json.loads(json.dumps(r.to_dict()))


def test_a_driver_killed_mid_study_resumes_and_trains_only_the_missing_jobs(tmp_path, uninterrupted):
    proc = start_cli(*STUDY, "--runs-dir", str(tmp_path))
    assert wait_for(lambda: _trained_so_far(tmp_path) >= 2, timeout=300), "no job was stored before the kill"
    kill_group(proc)
    stored = _trained_so_far(tmp_path)
    assert stored < N_JOBS
    result = _complete(tmp_path)
    assert result["jobs_reused"] == stored and result["jobs_trained"] == N_JOBS - stored
    _same_as(uninterrupted, result)
    _trained_once(result["study_dir"])


@pytest.mark.slow
def test_ten_sigkills_at_random_points_each_rerun_completes_with_the_same_numbers(tmp_path, uninterrupted):
    """Each point: once k jobs are stored (k drawn from 0..8; 8 = all, the measures), after a further
    random part of one job's training time; so the points spread over the whole study (start-up,
    training, saving, measuring) however fast the machine is at the moment."""
    from rotelab.store import Store

    store = Store.open(uninterrupted["study_dir"])
    job_s = float(np.mean([store.load(key)["seconds"] for key, *_ in store.jobs()]))
    store.close()
    rng = np.random.default_rng(15)
    rows = []
    for n in range(10):
        k, delay, runs = int(rng.integers(0, N_JOBS + 1)), float(rng.uniform(0.0, job_s)), tmp_path / f"kill{n}"
        proc = start_cli(*STUDY, "--runs-dir", str(runs))
        assert wait_for(lambda: _trained_so_far(runs) >= k or proc.poll() is not None, timeout=300)
        finished = wait_for(lambda: proc.poll() is not None, timeout=delay)
        kill_group(proc)
        stored = _trained_so_far(runs)
        result = _complete(runs)
        _same_as(uninterrupted, result)
        trained, taken_over = _trained_once(result["study_dir"])
        rows.append((k, round(delay, 2), "finished first" if finished else "killed", stored, result["jobs_trained"],
                     taken_over, trained))
    print("\nafter k jobs | + s | driver | jobs stored at the kill | trained by the rerun | in flight at the kill, "
          "retrained | trainings logged (8 jobs)")
    for row in rows:
        print(" | ".join(map(str, row)))
    assert sum(r[2] == "killed" for r in rows) >= 8


@pytest.mark.slow
def test_a_driver_on_ray_killed_twice_resumes_with_the_same_numbers(tmp_path, uninterrupted, ray_cluster):
    on_ray = ["--executor", "ray", "--ray-address", ray_cluster]
    for at_least in (2, 5):  # killed after 2 jobs are stored, then, rerun, after 5
        proc = start_cli(*STUDY, "--runs-dir", str(tmp_path), *on_ray)
        assert wait_for(lambda: _trained_so_far(tmp_path) >= at_least, timeout=300)
        kill_group(proc)
    result = _complete(tmp_path, *on_ray)
    _same_as(uninterrupted, result)
    trained, taken_over = _trained_once(result["study_dir"])
    print(f"\nRay driver killed twice: {trained} trainings of {N_JOBS} jobs, {taken_over} taken over from a "
          "killed driver")
