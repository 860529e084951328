"""On Ray, jobs finished by other studies are taken in the driver before any task is
dispatched, and only where the platform the tasks train on is known beforehand (a Ray the
executor starts on this machine, on the CPU). A real local Ray, started by the executor."""

from __future__ import annotations


import pandas as pd
import pytest

import rotelab
from executor_helpers import assert_same_outputs, stored_outputs, trained_log
from rotelab.data.builtin import synthetic
from rotelab.executors.local import LocalExecutor, platform_of
from rotelab.executors.ray import RayExecutor
from rotelab.store import Store

KW = dict(folds=3, epochs=3, width=16, batch_size=32, device="cpu", progress=False)


def test_a_study_on_ray_takes_the_jobs_a_local_study_finished(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="the Ray tests need Ray: pip install 'rotelab[ray]'")
    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    data = synthetic(n_train=90, n_test=30, n_features=8, n_classes=3, seed=1)
    local = rotelab.compare(data, "mlp", techniques="baseline,l2", runs_dir=tmp_path, **KW)
    on_ray = rotelab.compare(data, "mlp", techniques="baseline,l2,dropout", runs_dir=tmp_path, executor="ray", **KW)
    assert not ray.is_initialized()  # the executor's own Ray, stopped again
    old = stored_outputs(local.study_dir)
    store = Store.open(on_ray.study_dir)
    try:
        copied = store.copied()
        platforms = dict(store._db.execute("SELECT key, platform FROM origins").fetchall())
    finally:
        store.close()
    trained = [row[0] for row in trained_log(on_ray.study_dir)]
    assert sorted(k for k, _ in copied) == sorted(old) and len(trained) == 1  # one task dispatched: dropout
    assert platforms[trained[0]] == platform_of("cpu")  # as its worker reported it
    new = stored_outputs(on_ray.study_dir)
    assert_same_outputs(old, {k: new[k] for k in old})
    pd.testing.assert_frame_equal(local.table, on_ray.table.iloc[:2].reset_index(drop=True), check_exact=True)


def test_where_the_platform_is_not_known_before_the_tasks_run_nothing_is_taken(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert LocalExecutor().platform("cpu") == platform_of("cpu")
    assert RayExecutor(address="10.0.0.1:6379").platform("cpu") is None  # a cluster's workers
    assert RayExecutor(gpus_per_job=0.5).platform("auto") is None  # GPUs Ray assigns
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert RayExecutor().platform("cpu") is None


def test_the_platform_names_versions_and_device():
    import torch

    text = platform_of("cpu")
    assert text.startswith(f"rotelab {rotelab.__version__}; torch {torch.__version__}; cpu ")
