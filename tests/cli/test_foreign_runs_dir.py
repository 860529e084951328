"""A study directory that is not ours (another tool's files or database, a corrupt index, a
study.json from a newer format): the study command refuses it with one line, exit 2, and
writes nothing there."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import run_main

STUDY = ["diagnose", "--data", "synthetic", "--train-size", "60", "--epochs", "1", "--seeds", "1", "--width", "8",
         "--device", "cpu"]


def _snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))}


@pytest.fixture
def study_dir(tmp_path, capsys) -> Path:
    """Where the study command writes (found by running it once); emptied for each case to fill."""
    code, out, err = run_main([*STUDY, "--runs-dir", str(tmp_path), "--json"], capsys)
    assert code in (0, None), err
    return Path(json.loads(out)["study_dir"])


def _newer_study_json(d: Path) -> None:
    study = json.loads((d / "study.json").read_text())
    (d / "study.json").write_text(json.dumps({**study, "format_version": study["format_version"] + 1}))


def _other_tools_files(d: Path) -> None:
    shutil.rmtree(d)
    (d / "checkpoints").mkdir(parents=True)
    (d / "checkpoints" / "epoch_3.pt").write_bytes(b"\x80\x02weights")
    (d / "events.out.tfevents.1700000000").write_bytes(b"\x00" * 64)


def _other_tools_database(d: Path) -> None:
    shutil.rmtree(d)
    d.mkdir()
    db = sqlite3.connect(d / "store.sqlite")
    db.executescript("CREATE TABLE runs (run_uuid TEXT); CREATE TABLE metrics (key TEXT, value REAL);")
    db.close()


def _corrupt_index(d: Path) -> None:
    (d / "store.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)


@pytest.mark.parametrize(("damage", "match"), [
    (_newer_study_json, r"study\.json: written by another version of rotelab \(format 2, newer than the 1 this one "
                        r"reads\); open it with the rotelab that wrote it, or choose another --runs-dir; it is left "
                        r"untouched"),
    (_other_tools_files, r": not a rotelab study \(no store\.sqlite; it holds checkpoints/, "
                         r"events\.out\.tfevents\.1700000000\); rotelab writes only into an empty directory or its own "
                         r"study: choose another --runs-dir, or move those files"),
    (_other_tools_database, r"store\.sqlite: not a rotelab index \(tables metrics, runs\); rotelab will not touch it"),
    (_corrupt_index, r"store\.sqlite: not a rotelab index \(file is not a database\); rotelab will not touch it"),
])
def test_a_foreign_study_directory_is_refused_in_one_line_and_left_untouched(study_dir, capsys, damage, match):
    damage(study_dir)
    before = _snapshot(study_dir)
    code, out, err = run_main([*STUDY, "--runs-dir", str(study_dir.parent)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert __import__("re").search(match, err), err
    assert _snapshot(study_dir) == before  # never overwritten, nothing added


def test_a_runs_dir_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "runs").write_text("not a directory")
    code, out, err = run_main([*STUDY, "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2 and err.startswith("Error: ") and err.count("\n") == 1, err
    assert "cannot create the study directory (NotADirectoryError: " in err and "choose another --runs-dir" in err
    assert (tmp_path / "runs").read_text() == "not a directory"
