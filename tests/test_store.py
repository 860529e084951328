"""Store faults, with real damaged files: a job file that cannot be read is named, set aside and
retrained, never used; a broken study.json beside our own index is rewritten; a directory that
is not ours, or from another format version, is refused and left untouched."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import warnings

import numpy as np
import pytest

from rotelab.errors import StoreError
from rotelab.store import FORMAT_VERSION, INDEX_FILE, STUDY_FILE, Store, StoreWarning

CONFIG = {"kind": "diagnose", "config": {"epochs": 3}}


def _arrays(rng) -> dict[str, np.ndarray]:
    return {"pred": rng.normal(size=(4, 30)).astype(np.float32), "seconds": np.float64(1.5)}


def _snapshot(path) -> dict[str, str]:
    """Every file under ``path`` with a hash of its bytes: to show a directory was not touched."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))}


@pytest.fixture
def study(tmp_path, rng):
    """A study directory holding one stored job ``k1``; yields (path, arrays of k1)."""
    arrays = _arrays(rng)
    store = Store.create(tmp_path / "s", CONFIG)
    store.save("k1", "baseline", arrays)
    store.close()
    return tmp_path / "s", arrays


# ── (a) job files ──────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("damage,reason", [
    (lambda b: b[: len(b) // 2], "BadZipFile: File is not a zip file"),                   # truncated
    (lambda b: b"", "EOFError: No data left in file"),                                     # emptied
    (lambda b: b[:200] + bytes([b[200] ^ 0xFF]) + b[201:], "BadZipFile: Bad CRC-32 for file"),  # a flipped byte
])
def test_unreadable_job_is_named_set_aside_and_trained_again(study, rng, damage, reason):
    path, arrays = study
    job = path / "jobs" / "k1.npz"
    job.write_bytes(damage(job.read_bytes()))
    store = Store.open(path)
    lines: list[str] = []
    assert store.load_or_discard("k1", on_warning=lines.append) is None  # never used
    (line,) = lines
    assert line.startswith(f"{job}: unreadable job file ({reason}") and "\n" not in line
    assert line.endswith("moved to jobs/k1.npz.corrupt, it will be trained again")
    assert not job.exists() and (path / "jobs" / "k1.npz.corrupt").is_file()
    assert not store.has("k1") and store.jobs() == []  # reported as missing: the next run retrains it
    retrained = _arrays(rng)
    store.save("k1", "baseline", retrained)
    again = store.load_or_discard("k1", on_warning=lines.append)
    np.testing.assert_array_equal(again["pred"], retrained["pred"])
    assert len(lines) == 1


def test_has_sees_a_truncated_file_without_reading_it(study):
    path, _ = study
    job = path / "jobs" / "k1.npz"
    store = Store.open(path)
    assert store.has("k1")
    job.write_bytes(job.read_bytes()[:-30])
    assert not store.has("k1")  # an executor that only asks has() retrains it instead of loading it


def test_load_or_discard_of_a_job_that_is_not_there(study):
    path, arrays = study
    store = Store.open(path)
    lines: list[str] = []
    np.testing.assert_array_equal(store.load_or_discard("k1", on_warning=lines.append)["pred"], arrays["pred"])
    assert store.load_or_discard("unknown", on_warning=lines.append) is None
    (path / "jobs" / "k1.npz").unlink()
    assert store.load_or_discard("k1", on_warning=lines.append) is None and store.jobs() == []
    assert lines == []  # nothing was damaged


def test_load_or_discard_warns_by_default(study):
    path, _ = study
    (path / "jobs" / "k1.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.warns(StoreWarning, match=r"k1\.npz: unreadable job file .*it will be trained again"):
        assert Store.open(path).load_or_discard("k1") is None


def test_strict_load_names_the_file_in_one_line(study):
    path, _ = study
    job = path / "jobs" / "k1.npz"
    job.write_bytes(job.read_bytes()[:100])
    store = Store.open(path)
    with pytest.raises(StoreError, match=r"k1\.npz: unreadable job file \(BadZipFile: .*\); rerun the study") as err:
        store.load("k1")
    assert "\n" not in str(err.value) and job.exists()  # the strict reader reports, it does not move
    with pytest.raises(StoreError, match="job nope is not recorded"):
        store.load("nope")


# ── (b) study.json ─────────────────────────────────────────────────────────────────────
def test_truncated_study_json_is_rewritten_on_reopen_and_jobs_kept(study):
    path, arrays = study
    text = (path / STUDY_FILE).read_text()
    (path / STUDY_FILE).write_text(text[: len(text) // 2])
    with pytest.raises(StoreError, match=r"study\.json: unreadable \(JSONDecodeError: .*\); rerun the study command"):
        Store.open(path)  # a reader cannot rebuild it: it has no config
    lines: list[str] = []
    store = Store.create(path, {"kind": "diagnose", "config": {"epochs": 4}}, on_warning=lines.append)
    (line,) = lines
    assert line.startswith(f"{path / STUDY_FILE}: unreadable (JSONDecodeError: ")
    assert line.endswith("written again from this run's config, the stored jobs are kept")
    assert json.loads((path / STUDY_FILE).read_text()) == {"format_version": FORMAT_VERSION, "kind": "diagnose",
                                                           "config": {"epochs": 4}}
    np.testing.assert_array_equal(store.load_or_discard("k1", on_warning=lines.append)["pred"], arrays["pred"])
    store.close()
    Store.open(path).close()


def test_missing_study_json_beside_our_index_is_written_silently(study):
    path, _ = study
    (path / STUDY_FILE).unlink()  # as when a first run stops between the index and study.json
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        store = Store.create(path, CONFIG)
    assert store.has("k1") and json.loads((path / STUDY_FILE).read_text())["kind"] == "diagnose"


# ── (c) directories that are not ours ──────────────────────────────────────────────────
@pytest.mark.parametrize("version,match", [
    (FORMAT_VERSION + 1, f"format {FORMAT_VERSION + 1}, newer than the {FORMAT_VERSION} this one reads"),
    ("two", f"format 'two'; this one reads {FORMAT_VERSION}"),
    (None, f"format None; this one reads {FORMAT_VERSION}"),
])
def test_study_json_of_another_format_is_refused_untouched(study, version, match):
    path, _ = study
    written = json.loads((path / STUDY_FILE).read_text())
    written["format_version"] = version
    (path / STUDY_FILE).write_text(json.dumps(written))
    before = _snapshot(path)
    for attempt in (lambda: Store.create(path, CONFIG), lambda: Store.open(path)):
        with pytest.raises(StoreError, match=rf"written by another version of rotelab \({match}\).*left untouched"):
            attempt()
    assert _snapshot(path) == before


def test_index_of_a_newer_format_is_refused_untouched(study):
    path, _ = study
    db = sqlite3.connect(path / INDEX_FILE)
    db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION + 1),))
    db.commit()
    db.close()
    before = _snapshot(path)
    for attempt in (lambda: Store.create(path, CONFIG), lambda: Store.open(path)):
        with pytest.raises(StoreError, match=rf"store\.sqlite: written by another version of rotelab \(format "
                                             rf"'{FORMAT_VERSION + 1}', newer than"):
            attempt()
    assert _snapshot(path) == before


def test_directory_of_other_files_is_refused_untouched(tmp_path):
    path = tmp_path / "mine"
    path.mkdir()
    (path / "notes.txt").write_text("my notes")
    (path / "photos").mkdir()
    before = _snapshot(path)
    with pytest.raises(StoreError, match=r"mine: not a rotelab study \(no store\.sqlite; it holds notes\.txt, "
                                         r"photos/\); rotelab writes only into an empty directory or its own study"):
        Store.create(path, CONFIG)
    assert _snapshot(path) == before
    with pytest.raises(StoreError, match="not a rotelab study .missing study.json"):
        Store.open(path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="file: is a file, not a study directory"):
        Store.create(tmp_path / "file", CONFIG)


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_bytes(b"this is no database, just text " * 40), r"not a rotelab index \(file is not a database\)"),
    (lambda p: _sqlite(p, "CREATE TABLE photos (name TEXT)"), r"not a rotelab index \(tables photos\)"),
    (lambda p: _sqlite(p, "CREATE TABLE meta (key TEXT, value TEXT); CREATE TABLE jobs (key TEXT)"),
     r"not a rotelab index \(no format version recorded\)"),
])
def test_index_that_is_not_ours_is_refused_untouched(tmp_path, make, match):
    path = tmp_path / "s"
    path.mkdir()
    make(path / INDEX_FILE)
    (path / STUDY_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION}))
    before = _snapshot(path)
    for attempt in (lambda: Store.create(path, CONFIG), lambda: Store.open(path)):
        with pytest.raises(StoreError, match=match + "; rotelab will not touch it"):
            attempt()
    assert _snapshot(path) == before


def _sqlite(path, script: str) -> None:
    db = sqlite3.connect(path)
    db.executescript(script)
    db.close()


# ── starting, and resuming after a crash ───────────────────────────────────────────────
def test_empty_directory_and_an_interrupted_creation_become_studies(tmp_path):
    (tmp_path / "empty").mkdir()
    Store.create(tmp_path / "empty", CONFIG).close()
    half = tmp_path / "half"
    (half / "jobs").mkdir(parents=True)
    (half / INDEX_FILE).write_bytes(b"")  # SQLite had created the file, nothing else
    (half / STUDY_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION}))
    with pytest.raises(StoreError, match=r"half/store\.sqlite: an empty index \(the study never started\)"):
        Store.open(half)  # a reader finds nothing to read
    (half / STUDY_FILE).unlink()
    store = Store.create(half, CONFIG)
    assert store.jobs() == [] and Store.open(half).jobs() == []


def test_reopen_keeps_the_jobs(study):
    path, arrays = study
    store = Store.create(path, CONFIG)
    assert store.has("k1") and [k for k, *_ in store.jobs()] == ["k1"]


def test_index_left_mid_write_by_a_crashed_process_still_opens(study):
    path, arrays = study
    crash = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1])\n"
        "db.execute('PRAGMA cache_size = 1')\n"
        "db.execute('BEGIN')\n"
        "for i in range(3000):\n"
        "    db.execute('INSERT INTO jobs VALUES (?, ?, 1, 0.0, 0.0, ?)', (f'x{i}', 'y' * 400, 'jobs/none.npz'))\n"
        "os._exit(0)  # no commit, no rollback: a hot journal is left behind\n"
    )
    subprocess.run([sys.executable, "-c", crash, str(path / INDEX_FILE)], check=True)
    assert (path / f"{INDEX_FILE}-journal").is_file()
    store = Store.open(path)  # SQLite rolls the unfinished write back
    assert [k for k, *_ in store.jobs()] == ["k1"]
    np.testing.assert_array_equal(store.load("k1")["pred"], arrays["pred"])


def test_a_study_resumes_past_a_truncated_job_and_study_json_with_the_same_numbers(tmp_path):
    import rotelab

    first = rotelab.diagnose("synthetic", "mlp", epochs=2, seeds=1, runs_dir=tmp_path)
    path = tmp_path / first.study_dir.split("/")[-1]
    (job,) = (path / "jobs").glob("*.npz")
    job.write_bytes(job.read_bytes()[:-50])
    study_text = (path / STUDY_FILE).read_text()
    (path / STUDY_FILE).write_text(study_text[:40])
    with pytest.warns(StoreWarning, match=r"study\.json: unreadable .*written again from this run's config"):
        again = rotelab.diagnose("synthetic", "mlp", epochs=2, seeds=1, runs_dir=tmp_path)
    assert again.study_dir == first.study_dir and again.curves == first.curves and again.final == first.final
    assert Store.open(path).has(job.stem)  # retrained and recorded again
    assert json.loads((path / STUDY_FILE).read_text())["id"] == json.loads(study_text)["id"]
