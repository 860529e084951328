"""A job larger than the memory it may use is trained in parts and joined: same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import random_members
from rotelab.data import load_dataset
from rotelab.engine import Members, Recipe
from rotelab.engine.memory import BUDGET_ENV, budget_bytes, join_parts
from rotelab.errors import InvalidInputError, RotelabError
from rotelab.executors.local import train_fitting
from rotelab.models import ModelSpec, build_model
from rotelab.plan import Examples, Job, ModelRef


def _job(k: int):
    ds = load_dataset("synthetic")
    x, y, train, val, test = random_members(ds, k, 150)
    spec = ModelSpec("mlp", width=64).resolved()
    ex = Examples(x, y, y, test, ds.n_train, ds.n_classes, ds.kind, ds.fingerprint())
    job = Job("t", Recipe(model=spec, epochs=3, batch_size=50), Members(np.arange(k), train, val), 0,
              ModelRef(lambda: build_model(spec, ds.feature_shape, ds.n_classes), "mlp"))
    return job, ex


def test_a_job_split_by_a_tiny_budget_gives_the_same_numbers(monkeypatch):
    job, ex = _job(6)
    whole = train_fitting(job, ex, device="cpu", threads=1)
    epochs = []
    monkeypatch.setenv(BUDGET_ENV, "1.6M")  # two of these members (0.7 MiB each) at a time
    parts = train_fitting(job, ex, device="cpu", threads=1, on_epoch=lambda e, n: epochs.append(e))
    assert parts.keys() == whole.keys()
    for key in ("loss", "margin", "pred", "train_loss", "val_acc", "best_epoch"):
        np.testing.assert_allclose(parts[key], whole[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert parts["loss"].shape == (6, len(ex.y)) and epochs == [1, 2, 3]  # the first part reports its epochs


def test_not_even_one_member_fits_is_one_line(monkeypatch):
    job, ex = _job(2)
    monkeypatch.setenv(BUDGET_ENV, "1K")
    with pytest.raises(RotelabError, match=r"job 't': one member needs about 0.\d MiB but the budget is 1.0 KiB "
                                           r"\(ROTELAB_MEMORY_BUDGET=1K\); use a smaller --batch-size or --width, "
                                           r"or a larger ROTELAB_MEMORY_BUDGET$"):
        train_fitting(job, ex, device="cpu", threads=1)


def test_budget_parsing(monkeypatch):
    import torch

    monkeypatch.setenv(BUDGET_ENV, "1.5G")
    assert budget_bytes(torch.device("cpu")) == int(1.5 * 2**30)
    monkeypatch.delenv(BUDGET_ENV)
    assert budget_bytes(torch.device("cpu")) is None
    monkeypatch.setenv(BUDGET_ENV, "lots")
    with pytest.raises(InvalidInputError, match="expected bytes such as 2G"):
        budget_bytes(torch.device("cpu"))
    monkeypatch.setenv(BUDGET_ENV, "0")
    with pytest.raises(InvalidInputError, match="'0': a budget must be at least 1 byte; unset it for no limit"):
        budget_bytes(torch.device("cpu"))


def test_a_malformed_budget_is_one_line_before_any_study_folder(tmp_path, cli):
    r = cli("diagnose", "--data", "synthetic", "--epochs", "1", "--runs-dir", str(tmp_path / "runs"),
            env={BUDGET_ENV: "lots"})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["Error: ROTELAB_MEMORY_BUDGET='lots': expected bytes such as 2G, "
                                             "500M or 123456"]
    assert "Traceback" not in r.stderr and not (tmp_path / "runs").exists()


def test_a_study_whose_first_job_does_not_fit_leaves_no_folder(tmp_path, cli):
    """The budget is read at train time, after the study folder is made: a study that stored
    nothing removes it (and the runs folder it made), so no empty study is left to resume."""
    r = cli("compare", "--data", "synthetic", "--epochs", "1", "--folds", "2", "--runs-dir", str(tmp_path / "runs"),
            env={BUDGET_ENV: "1"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("Error: job 'baseline / 2 fold(s)': one member needs about")
    assert not (tmp_path / "runs").exists()
    (tmp_path / "runs").mkdir()  # a runs folder the user made stays, empty
    assert cli("compare", "--data", "synthetic", "--epochs", "1", "--folds", "2", "--runs-dir",
               str(tmp_path / "runs"), env={BUDGET_ENV: "1"}).returncode == 2
    assert (tmp_path / "runs").is_dir() and not any((tmp_path / "runs").iterdir())


def test_join_parts_keeps_members_in_order():
    a = {"loss": np.zeros((2, 3)), "epoch": np.arange(3), "seconds": np.float64(1), "vectorized": np.bool_(True),
         "threads": np.int64(1)}
    b = {"loss": np.ones((1, 3)), "epoch": np.arange(3), "seconds": np.float64(2), "vectorized": np.bool_(False),
         "threads": np.int64(2)}
    j = join_parts([a, b])
    assert j["loss"].tolist() == [[0] * 3, [0] * 3, [1] * 3] and j["seconds"] == 3 and not j["vectorized"]
    assert j["threads"] == 2 and j["epoch"].tolist() == [0, 1, 2]
