"""The `rotelab` command as a user runs it: real processes, real files."""

import json

import pytest

from conftest import tree


def test_diagnose_json_end_to_end(cli, tmp_path):
    proc = cli("diagnose", "--data", "synthetic", "--epochs", "15", "--width", "256", "--runs-dir",
               str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["verdict"] == "memorizing" and result["onset_epoch"] is not None
    assert (tmp_path / result["study_dir"].split("/")[-1] / "result.json").is_file()


def test_diagnose_table_and_verdict(cli, tmp_path):
    proc = cli("diagnose", "--data", "synthetic", "--epochs", "4", "--runs-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "verdict:" in proc.stdout and "train" in proc.stdout and "gap" in proc.stdout


def test_datasets_lists_the_builtins(cli):
    proc = cli("datasets", "--json")
    names = [d["name"] for d in json.loads(proc.stdout)]
    assert names == ["digits", "mnist1d", "synthetic"]


@pytest.mark.parametrize("args,match", [
    (["--data", "nope"], "unknown dataset 'nope'"),
    (["--model", "vgg"], "unknown model 'vgg'"),
    (["--epochs", "-3"], "epochs must be >= 1"),
    (["--train-size", "5000"], "larger than the 300 training examples"),
    (["--data", "{missing}"], "file not found"),
    (["--data", "{garbage}"], "not a readable .npz"),
    (["--data", "{nan}"], "NaN"),
    (["--data", "{outofrange}"], "out of range"),
    (["--data", "{shortlabels}"], "inconsistent numbers of samples"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(cli, tmp_path, args, match):
    import numpy as np

    files = {"missing": tmp_path / "missing.npz", "garbage": tmp_path / "garbage.npz", "nan": tmp_path / "nan.npz",
             "outofrange": tmp_path / "oor.npz", "shortlabels": tmp_path / "short.npz"}
    files["garbage"].write_bytes(b"\x00garbage")
    x = np.ones((20, 3), np.float32)
    x[3, 1] = np.nan
    np.savez(files["nan"], x=x, y=np.arange(20) % 2)
    np.savez(files["outofrange"], x=np.ones((20, 3)), y=np.arange(20) % 3, classes=np.array(["a", "b"]))
    np.savez(files["shortlabels"], x=np.ones((20, 3)), y=np.arange(19) % 2)
    args = [a.format(**files) for a in args]
    runs = tmp_path / "runs"
    base = ["diagnose", "--data", "synthetic", "--epochs", "2", "--runs-dir", str(runs)]
    proc = cli(*base, *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and match in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(runs) == []
