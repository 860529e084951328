"""``rotelab run FILE``: studies from a TOML file, their own study.toml, and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_main, tree

DIAGNOSE = """
[[study]]
kind = "diagnose"
data = "synthetic"
seeds = 2
epochs = 3
runs-dir = "{runs}"

[[study]]
kind = "compare"
data = "synthetic"
train_size = 90
techniques = ["baseline", "l2"]
folds = 2
epochs = 2
runs-dir = "{runs}"
"""


def test_a_file_runs_both_studies_and_a_rerun_trains_nothing(tmp_path, capsys):
    runs = tmp_path / "runs"
    f = tmp_path / "study.toml"
    f.write_text(DIAGNOSE.format(runs=runs))
    code, out, err = run_main(["run", str(f), "--json"], capsys)
    assert code in (0, None), err
    first = json.loads(out)
    assert [Path(r["study_dir"]).name.split("-")[0] for r in first] == ["diagnose", "compare"]
    jobs = sorted(p.name for p in runs.rglob("jobs/*.npz"))
    assert len(jobs) == 1 + 2

    code, out, err = run_main(["run", str(f)], capsys)  # rendered as tables this time, from the store
    assert code in (0, None), err
    assert "reusing 1 of 1" in err and "reusing 2 of 2" in err
    assert "verdict:" in out and "technique" in out
    assert sorted(p.name for p in runs.rglob("jobs/*.npz")) == jobs


def test_a_studys_own_file_reproduces_it(tmp_path, capsys):
    runs = tmp_path / "runs"
    code, out, err = run_main(["compare", "--data", "synthetic", "--train-size", "90", "--techniques",
                               "baseline,dropout=0.2", "--folds", "2", "--epochs", "2", "--runs-dir", str(runs),
                               "--json"], capsys)
    assert code in (0, None), err
    r = json.loads(out)
    own = Path(r["study_dir"]) / "study.toml"
    text = own.read_text()
    assert 'kind = "compare"' in text and 'techniques = "baseline,dropout=0.2"' in text and "epochs = 2" in text
    before = {p: p.stat().st_mtime_ns for p in runs.rglob("jobs/*.npz")}
    code, out, err = run_main(["run", str(own), "--json"], capsys)
    assert code in (0, None), err
    again = json.loads(out)[0]
    assert again["study_dir"] == r["study_dir"] and again["table"] == r["table"]
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("jobs/*.npz")} == before  # no job trained again


def test_a_studys_own_file_reruns_in_place_after_the_runs_folder_moved(tmp_path, capsys, monkeypatch):
    """The file used to say runs-dir = "runs": from another directory, or after a move, the
    rerun trained everything again somewhere else."""
    code, out, err = run_main(["diagnose", "--data", "synthetic", "--epochs", "2", "--seeds", "1", "--runs-dir",
                               str(tmp_path / "runs"), "--json"], capsys)
    assert code in (0, None), err
    study = Path(json.loads(out)["study_dir"])
    assert "runs-dir" not in (study / "study.toml").read_text()
    moved = tmp_path / "archive" / "runs2"
    moved.parent.mkdir()
    (tmp_path / "runs").rename(moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    before = {p: p.stat().st_mtime_ns for p in moved.rglob("jobs/*.npz")}
    code, out, err = run_main(["run", str(moved / study.name / "study.toml"), "--json"], capsys)
    assert code in (0, None), err
    assert json.loads(out)[0]["study_dir"] == str(moved / study.name)
    assert before and {p: p.stat().st_mtime_ns for p in moved.rglob("jobs/*.npz")} == before  # nothing retrained
    assert list(elsewhere.iterdir()) == []  # nothing written where the command ran


@pytest.mark.parametrize(("content", "match"), [
    ('[[study]]\nkind = "diagnose"\nfold = 3\n', "study 1 (diagnose): unknown key 'fold'; valid keys: kind, data"),
    ('[[study]]\nkind = "diagnose"\nseeds = "three"\n', "study 1 (diagnose): 'seeds' must be a whole number, got \"three\""),
    ('[[study]]\nkind = "diagnose"\nepochs = 2.5\n', "'epochs' must be a whole number, got 2.5"),
    ('[[study]]\nkind = "diagnose"\nstandardize = 1\n', "'standardize' must be true or false, got 1"),
    ('[[study]]\nkind = "diagnose"\nepochs = true\n', "'epochs' must be a whole number, got true"),  # as TOML spells it
    ('[[study]]\nkind = "compare"\ntechniques = 5\n', "'techniques' must be a string, or a list of names or numbers"),
    ('[[study]]\nkind = "diagnose"\ndata = "synthetic"\nepochs = 1\n\n[[study]]\nkind = "compare"\nlr = -1\n',
     "study 2 (compare): learning rate must be in (0.0, inf], got -1.0"),  # study 1 is not trained first
    ('[[study]]\nkind = "compare"\ndata = "synthetic"\ntrain-size = 100000\n',  # found by the study, not the check
     "study.toml: study 1 (compare): train size 100000 is larger than the 300 training examples of 'synthetic'"),
    ('[[study]]\nkind = "memorise"\n', "study 1: kind 'memorise'; expected kind = one of diagnose, compare, sweep"),
    ('[[study]]\ndata = "digits"\n', "study 1: no kind; expected kind = one of"),
    ('[[study]\nkind = "diagnose"\n', "not valid TOML"),
    ('kind = "diagnose"\n', "unknown top-level key 'kind'; describe each study in a [[study]] table"),
    ("", "no [[study]] table"),
    ('[[study]]\nkind = "compare"\n\n[[study]]\nkind = "sweep"\nwidth = "wide"\n', "study 2 (sweep): 'width'"),
])
def test_bad_study_files_are_one_line_exit_2_nothing_written(tmp_path, capsys, monkeypatch, content, match):
    monkeypatch.chdir(tmp_path)  # a study would land in ./runs
    f = tmp_path / "study.toml"
    f.write_text(content)
    code, out, err = run_main(["run", str(f)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and err.count("\n") == 1 and match in err, err
    assert tree(tmp_path) == ["study.toml"]


def test_a_missing_study_file(tmp_path, capsys):
    code, out, err = run_main(["run", str(tmp_path / "nope.toml")], capsys)
    assert code == 2 and err.startswith("Error: ") and "no such study file" in err and err.count("\n") == 1


def test_a_study_run_from_python_data_says_it_cannot_be_rerun_from_its_file(tmp_path, capsys):
    import numpy as np

    import rotelab

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 4)).astype(np.float32), np.arange(80) % 2
    r = rotelab.diagnose((x, y), "mlp", seeds=1, epochs=1, runs_dir=tmp_path)
    own = Path(r.study_dir) / "study.toml"
    assert 'data = "<from Python>"' in own.read_text()
    code, _, err = run_main(["run", str(own)], capsys)
    assert code == 2 and "data came from Python and cannot be rerun from a file" in err


def test_runs_dir_on_the_command_line_puts_every_study_there(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "two.toml"
    f.write_text('[[study]]\nkind = "diagnose"\ndata = "synthetic"\nepochs = 1\nseeds = 1\n\n'
                 '[[study]]\nkind = "diagnose"\ndata = "synthetic"\nepochs = 1\nseeds = 1\nruns-dir = "elsewhere"\n')
    code, out, err = run_main(["run", str(f), "--runs-dir", "mine", "--json"], capsys)
    assert code in (0, None), err
    dirs = [Path(r["study_dir"]) for r in json.loads(out)]
    assert [d.parent.name for d in dirs] == ["mine", "mine"] and not (tmp_path / "elsewhere").exists()
    assert not (tmp_path / "runs").exists()
