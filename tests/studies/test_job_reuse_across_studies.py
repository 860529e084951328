"""A technique added to a study lands in a new study directory (its id hashes the technique
list), yet trains only the new cell: the jobs the other studies of the same runs directory
finished are taken from them, bit for bit, and those studies are not touched. Real training,
tiny models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from torch import nn

from conftest import RecordingProgress, tiny_jobs
from rotelab.data.builtin import synthetic
from rotelab.store import Store
from rotelab.studies.compare import compare
from rotelab.studies.memorization import memorization

FAST = dict(epochs=3, width=16, batch_size=32, device="cpu")
#: What differs between two trainings of the same job and is not a result.
TIMINGS = ("seconds", "threads")


@pytest.fixture
def small():
    """90 pool / 30 test examples, 3 classes, 8 features."""
    return synthetic(n_train=90, n_test=30, n_features=8, n_classes=3, seed=1)


def _snapshot(path: str | Path) -> dict[str, tuple]:
    """Every file of a study: a hash of its bytes and its modification time."""
    path = Path(path)
    return {str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()}


def _stored(study_dir: str | Path) -> dict[str, tuple[str, dict[str, np.ndarray]]]:
    """Key -> (label, arrays) of every stored job."""
    store = Store.open(study_dir)
    try:
        return {key: (label, store.load(key)) for key, label, _, _ in store.jobs()}
    finally:
        store.close()


def _log(study_dir: str | Path) -> tuple[list[str], list[tuple[str, str]]]:
    """(keys trained in this study, (key, study) of those taken from another)."""
    store = Store.open(study_dir)
    try:
        return [row[0] for row in store.trained()], store.copied()
    finally:
        store.close()


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        if name not in TIMINGS:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_technique_added_to_compare_trains_only_its_cell(tmp_path, small):
    first = compare(small, "mlp", techniques="baseline,l2", folds=3, runs_dir=tmp_path, **FAST)
    before = _snapshot(first.study_dir)
    bar = RecordingProgress()
    second = compare(small, "mlp", techniques="baseline,l2,dropout", folds=3, runs_dir=tmp_path, progress=bar,
                     **FAST)
    assert second.study_dir != first.study_dir  # a new study ...
    assert bar.starts == [(3, 2, 3)]  # ... reusing 2 of 3 jobs: dropout's 3 epochs to train
    trained, copied = _log(second.study_dir)
    old = _stored(first.study_dir)
    assert sorted(k for k, _ in copied) == sorted(old) and {s for _, s in copied} == {Path(first.study_dir).name}
    assert len(trained) == 1 and trained[0] not in old
    new = _stored(second.study_dir)
    for key, (label, arrays) in old.items():
        _assert_same(arrays, new[key][1])
        np.testing.assert_array_equal(arrays["seconds"], new[key][1]["seconds"])  # the very file
    # the baseline and l2 rows: the same numbers, to the last bit
    pd.testing.assert_frame_equal(first.table, second.table.iloc[:2].reset_index(drop=True), check_exact=True)
    assert _snapshot(first.study_dir) == before  # the first study is only read


def test_a_technique_added_to_memorization_reuses_the_baseline_models(tmp_path, small):
    kw = dict(models=16, chunk=8, runs_dir=tmp_path, **FAST)
    first = memorization(small, "mlp", **kw)
    before = _snapshot(first.study_dir)
    second = memorization(small, "mlp", techniques="baseline,dropout", **kw)
    assert second.study_dir != first.study_dir
    assert (first.jobs_trained, first.jobs_reused) == (2, 0)
    assert (second.jobs_trained, second.jobs_reused) == (2, 2)  # dropout's two chunks trained, baseline's taken
    pd.testing.assert_frame_equal(first.scores["baseline"], second.scores["baseline"], check_exact=True)
    for name, values in first.arrays["baseline"].items():
        np.testing.assert_array_equal(values, second.arrays["baseline"][name])
    assert _snapshot(first.study_dir) == before


def test_a_damaged_job_of_the_other_study_is_trained_again_with_the_same_numbers(tmp_path, small):
    first = compare(small, "mlp", techniques="baseline,l2", folds=3, runs_dir=tmp_path, **FAST)
    old = _stored(first.study_dir)
    baseline = next(k for k, (label, _) in old.items() if label.startswith("baseline"))
    job = Path(first.study_dir, "jobs", f"{baseline}.npz")
    raw = job.read_bytes()
    job.write_bytes(raw[:300] + bytes([raw[300] ^ 0xFF]) + raw[301:])  # one flipped byte
    before = _snapshot(first.study_dir)
    second = compare(small, "mlp", techniques="baseline,l2,dropout", folds=3, runs_dir=tmp_path, **FAST)
    trained, copied = _log(second.study_dir)
    assert [k for k, _ in copied] == [k for k in old if k != baseline]  # l2 only
    assert baseline in trained and len(trained) == 2  # baseline trained again, and dropout
    _assert_same(old[baseline][1], _stored(second.study_dir)[baseline][1])  # deterministic: the same numbers
    pd.testing.assert_frame_equal(first.table, second.table.iloc[:2].reset_index(drop=True), check_exact=True)
    assert _snapshot(first.study_dir) == before  # the damaged file is left where it was, as it was


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.body(x)


def test_jobs_of_your_own_model_are_not_taken_from_other_studies(tmp_path, small):
    """Its fingerprint covers the class's source, not what the factory or that code calls."""
    compare(small, TinyNet, techniques="baseline", folds=2, runs_dir=tmp_path, **FAST)
    second = compare(small, TinyNet, techniques="baseline,l2", folds=2, runs_dir=tmp_path, **FAST)
    trained, copied = _log(second.study_dir)
    assert len(trained) == 2 and copied == []


def test_a_rerun_of_the_same_study_still_takes_nothing_from_elsewhere(tmp_path, small):
    compare(small, "mlp", techniques="baseline", folds=2, runs_dir=tmp_path, **FAST)
    second = compare(small, "mlp", techniques="baseline,l2", folds=2, runs_dir=tmp_path, **FAST)
    bar = RecordingProgress()
    again = compare(small, "mlp", techniques="baseline,l2", folds=2, runs_dir=tmp_path, progress=bar, **FAST)
    assert again.study_dir == second.study_dir and bar.starts == [(0, 2, 2)]
    assert len(_log(second.study_dir)[1]) == 1  # the baseline, taken on the first run only


# ── the driver: held jobs, the note ─────────────────────────────────────────────────────
def test_a_job_another_driver_of_the_study_holds_is_left_to_it(tmp_path):
    import threading
    import time

    from rotelab.executors.driver import run_jobs
    from rotelab.progress import Progress
    from rotelab.store import Owner

    jobs, ex = tiny_jobs(2)
    a = Store.create(tmp_path / "a", {"kind": "test"})
    done = run_jobs(jobs, ex, store=a, progress=Progress(), device="cpu")
    a.close()
    b = Store.create(tmp_path / "b", {"kind": "test"})
    key = jobs[1].key(ex.fingerprint)
    other = Owner("elsewhere", 7, "1")  # a live driver of b (on another host) holds job 1 ...
    assert b.claim(key, other) == "claimed"

    def finish_it() -> None:  # ... and saves it a moment later
        time.sleep(0.5)
        mine = Store(b.path)
        mine.save(key, jobs[1].label, done[1], owner=other)
        mine.close()

    thread = threading.Thread(target=finish_it)
    thread.start()
    try:
        out = run_jobs(jobs, ex, store=b, progress=Progress(), device="cpu")
    finally:
        thread.join()
    assert out.trained == 0 and out.reused == 2 and out.copied == {jobs[0].key(ex.fingerprint): "a"}
    assert b.copied() == [(jobs[0].key(ex.fingerprint), "a")] and [r[1] for r in b.trained()] == [other.token]
    b.close()


def test_what_was_taken_is_said_in_one_note_and_a_silent_progress_stays_silent(tmp_path, capsys):
    from rotelab.executors.driver import run_jobs
    from rotelab.progress import Progress

    jobs, ex = tiny_jobs(2)
    for name, progress in (("a", Progress()), ("b", Progress()), ("c", RecordingProgress())):
        store = Store.create(tmp_path / name, {"kind": "test"})
        out = run_jobs(jobs[: 1 if name == "a" else 2], ex, store=store, progress=progress, device="cpu")
        store.close()
        err = capsys.readouterr().err
        if name == "b":
            assert out.copied == {jobs[0].key(ex.fingerprint): "a"} and err == ""
        if name == "c":
            assert progress.starts == [(0, 2, 2)] and len(out.copied) == 2
            assert err.startswith(f"note: 2 of them taken from other studies in {tmp_path} ") and err.count("\n") == 1
            assert err.rstrip().endswith(": a, b")
