"""``Store.copy_from_other_studies``: a job another study of the same runs directory finished is
taken only with the same key, the same platform and the bytes that study recorded; anything
else there (damaged, half-written, another format, not a study) is passed over, and the other
study is never written to."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

import numpy as np
import pytest

import rotelab.store as store_mod
from rotelab.store import FORMAT_VERSION, INDEX_FILE, STUDY_FILE, Store

CONFIG = {"kind": "compare", "config": {"epochs": 3}}
HERE = "rotelab 0.1.0; torch 2.0; cpu AVX2"


def _arrays(rng) -> dict[str, np.ndarray]:
    return {"pred": rng.normal(size=(4, 30)).astype(np.float32), "seconds": np.float64(1.5)}


def _snapshot(path) -> dict[str, tuple]:
    """Every file under ``path``: a hash of its bytes and its modification time."""
    return {str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()}


def _study(path, jobs: dict[str, dict[str, np.ndarray]], *, platform: str | None = HERE) -> None:
    store = Store.create(path, CONFIG)
    for key, arrays in jobs.items():
        store.save(key, "baseline", arrays, platform=platform)
    store.close()


@pytest.fixture
def runs(tmp_path, rng):
    """``runs/a``: a finished study with jobs k1 and k2; yields (runs dir, their arrays)."""
    arrays = {"k1": _arrays(rng), "k2": _arrays(rng)}
    _study(tmp_path / "a", arrays)
    return tmp_path, arrays


def _take(path, keys, platform=HERE) -> tuple[dict[str, str], dict[str, dict[str, np.ndarray]]]:
    """Open (create) study ``path``, take ``keys`` from its neighbours; (what was taken, its arrays)."""
    store = Store.create(path, CONFIG)
    try:
        copied = store.copy_from_other_studies([(k, f"job {k}") for k in keys], platform=platform)
        return copied, {k: store.load(k) for k in copied}
    finally:
        store.close()


def test_a_finished_job_is_taken_with_its_bytes_and_recorded(runs):
    runs_dir, arrays = runs
    before = _snapshot(runs_dir / "a")
    copied, got = _take(runs_dir / "b", ["k1", "k2", "k3"])
    assert copied == {"k1": "a", "k2": "a"}
    for key in copied:
        assert (runs_dir / "b" / "jobs" / f"{key}.npz").read_bytes() == (runs_dir / "a" / "jobs" / f"{key}.npz").read_bytes()
        for name, value in arrays[key].items():
            np.testing.assert_array_equal(got[key][name], value)
    store = Store.open(runs_dir / "b")
    try:
        assert store.copied() == [("k1", "a"), ("k2", "a")]
        assert store.trained() == []  # copied, not trained here
        assert [row[:3] for row in store.jobs()] == [("k1", "job k1", 4), ("k2", "job k2", 4)]
    finally:
        store.close()
    assert _snapshot(runs_dir / "a") == before
    assert not [p for p in (runs_dir / "b" / "jobs").iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_taken_job_can_be_taken_again_from_the_study_that_took_it(runs):
    runs_dir, _ = runs
    _take(runs_dir / "b", ["k1"])
    (runs_dir / "a" / "jobs" / "k1.npz").unlink()  # only b has it now
    copied, _ = _take(runs_dir / "c", ["k1"])
    assert copied == {"k1": "b"}


@pytest.mark.parametrize("platform", [None, "rotelab 0.0.9; torch 2.0; cpu AVX2", "rotelab 0.1.0; torch 2.0; cuda H100"])
def test_another_platform_takes_nothing(runs, platform):
    runs_dir, _ = runs
    assert _take(runs_dir / "b", ["k1"], platform=platform)[0] == {}


def test_a_job_saved_without_a_platform_is_not_taken(tmp_path, rng):
    _study(tmp_path / "a", {"k1": _arrays(rng)}, platform=None)  # an executor that does not say
    assert _take(tmp_path / "b", ["k1"])[0] == {}


def test_a_job_this_study_has_is_not_taken(runs, rng):
    runs_dir, _ = runs
    _study(runs_dir / "b", {"k1": _arrays(rng)})
    assert _take(runs_dir / "b", ["k1"])[0] == {}


@pytest.mark.parametrize("damage", [
    lambda b: b[: len(b) // 2],                                          # truncated
    lambda b: b[:200] + bytes([b[200] ^ 0xFF]) + b[201:],                # a flipped byte (the zip still opens)
    lambda b: b"",                                                       # emptied
])
def test_a_damaged_job_file_is_passed_over_and_left_as_it_is(runs, damage):
    runs_dir, _ = runs
    job = runs_dir / "a" / "jobs" / "k1.npz"
    job.write_bytes(damage(job.read_bytes()))
    before = _snapshot(runs_dir / "a")
    copied, _ = _take(runs_dir / "b", ["k1", "k2"])
    assert copied == {"k2": "a"}
    assert _snapshot(runs_dir / "a") == before  # not set aside there: that study is only read
    assert sorted(p.name for p in (runs_dir / "b" / "jobs").iterdir()) == ["k2.npz"]


def test_a_missing_job_file_is_passed_over(runs):
    runs_dir, _ = runs
    (runs_dir / "a" / "jobs" / "k1.npz").unlink()
    assert _take(runs_dir / "b", ["k1", "k2"])[0] == {"k2": "a"}


def test_a_job_file_being_written_is_not_taken(tmp_path, rng):
    """A temporary file (no row yet) of a study that is still training."""
    _study(tmp_path / "a", {})
    store = Store.create(tmp_path / "a", CONFIG)
    try:
        tmp = tmp_path / "a" / "jobs" / f".k1.tmp{os.getpid()}.npz"
        np.savez(tmp, **_arrays(rng))
        assert _take(tmp_path / "b", ["k1"])[0] == {}
    finally:
        store.close()


def test_a_job_file_replaced_by_another_rotelab_is_not_taken(runs, rng):
    """A rotelab without ``origins`` retrained k1 there: its file no longer has the recorded bytes."""
    runs_dir, _ = runs
    np.savez(runs_dir / "a" / "jobs" / "k1.npz", **_arrays(rng))
    assert _take(runs_dir / "b", ["k1", "k2"])[0] == {"k2": "a"}


def test_a_study_of_another_format_or_none_is_passed_over(runs, tmp_path, rng):
    runs_dir, _ = runs
    # another format version in study.json, then in the index
    _study(runs_dir / "v2", {"k3": _arrays(rng)})
    study = json.loads((runs_dir / "v2" / STUDY_FILE).read_text())
    (runs_dir / "v2" / STUDY_FILE).write_text(json.dumps({**study, "format_version": FORMAT_VERSION + 1}))
    _study(runs_dir / "v3", {"k4": _arrays(rng)})
    db = sqlite3.connect(runs_dir / "v3" / INDEX_FILE)
    db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION + 1),))
    db.commit()
    db.close()
    # an earlier rotelab's study: no origins table
    _study(runs_dir / "old", {"k5": _arrays(rng)})
    db = sqlite3.connect(runs_dir / "old" / INDEX_FILE)
    db.execute("DROP TABLE origins")
    db.commit()
    db.close()
    # not studies: a folder of other files, an index that is not ours, a damaged index, a file
    (runs_dir / "photos").mkdir()
    (runs_dir / "photos" / "k1.npz").write_bytes(b"not ours")
    (runs_dir / "other").mkdir()
    sqlite3.connect(runs_dir / "other" / INDEX_FILE).executescript("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
    (runs_dir / "other" / STUDY_FILE).write_text("{}")
    (runs_dir / "broken").mkdir()
    (runs_dir / "broken" / INDEX_FILE).write_bytes(b"garbage" * 100)
    (runs_dir / "broken" / STUDY_FILE).write_text("{")
    (runs_dir / "notes.txt").write_text("hello")
    before = _snapshot(runs_dir)
    copied, _ = _take(runs_dir / "b", ["k1", "k3", "k4", "k5"])
    assert copied == {"k1": "a"}
    after = _snapshot(runs_dir)
    assert {k: v for k, v in after.items() if not k.startswith("b/")} == before


def test_a_copy_where_hard_links_fail(runs, monkeypatch):
    runs_dir, arrays = runs

    def no_links(src, dst, **kw):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    copied, got = _take(runs_dir / "b", ["k1"])
    assert copied == {"k1": "a"}
    np.testing.assert_array_equal(got["k1"]["pred"], arrays["k1"]["pred"])
    assert (runs_dir / "b" / "jobs" / "k1.npz").stat().st_nlink == 1


def test_the_other_studies_are_read_once_per_store(runs, monkeypatch):
    runs_dir, _ = runs
    for name in "cdef":
        _study(runs_dir / name, {})
    reads = []
    real = store_mod._finished_jobs
    monkeypatch.setattr(store_mod, "_finished_jobs", lambda path, platform: reads.append(path.name) or real(path, platform))
    store = Store.create(runs_dir / "b", CONFIG)
    try:
        assert store.copy_from_other_studies([("k1", "x")], platform=HERE) == {"k1": "a"}
        assert store.copy_from_other_studies([("k2", "x"), ("k9", "y")], platform=HERE) == {"k2": "a"}
        assert store.copy_from_other_studies([("k1", "x")], platform=HERE) == {}  # has it: nothing read
    finally:
        store.close()
    assert reads == ["a", "c", "d", "e", "f"]  # each neighbour once, never itself


def test_a_locked_neighbour_is_passed_over_within_a_second(runs):
    """A study whose index another process holds for writing is skipped, not waited for."""
    runs_dir, _ = runs
    db = sqlite3.connect(runs_dir / "a" / INDEX_FILE, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        assert _take(runs_dir / "b", ["k1"])[0] == {}
    finally:
        db.execute("ROLLBACK")
        db.close()
