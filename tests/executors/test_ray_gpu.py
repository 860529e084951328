"""On a CUDA GPU: two jobs share it through fractional ``num_gpus`` (each capped to its share of
the memory), and the numbers equal the local executor's on the same GPU. Skipped without CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rotelab
from executor_helpers import assert_same_outputs, stored_outputs
from rotelab.data.builtin import synthetic
from rotelab.engine.recipe import Recipe
from rotelab.engine.train import Members
from rotelab.executors import RayExecutor, run_jobs
from rotelab.models import ModelSpec, build_model
from rotelab.plan import Examples, Job, ModelRef
from rotelab.progress import Progress
from rotelab.store import Store

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def ray_gpu():
    ray = pytest.importorskip("ray", reason="the Ray tests need Ray: pip install 'rotelab[ray]'")
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()


def _jobs(n: int, epochs: int) -> tuple[list[Job], Examples]:
    """``n`` jobs of 16 MLPs on 2000 synthetic examples (a few seconds each on a GPU)."""
    ds = synthetic(n_train=1600, n_test=400, n_features=32, n_classes=4, seed=0)
    ex = Examples.of(ds)
    spec = ModelSpec("mlp", width=256).resolved()
    recipe = Recipe(model=spec, epochs=epochs, batch_size=64, eval_every=0)
    rng = np.random.default_rng(0)
    train = np.zeros((16, 2000), bool)
    train[:, :1600] = rng.random((16, 1600)) < 0.7
    ref = ModelRef(lambda: build_model(spec, ds.feature_shape, 4), f"builtin:{spec}")
    return [Job(f"job {j}", recipe, Members(np.arange(16) + 16 * j, train, ~train & ~ex.test_mask), j, ref)
            for j in range(n)], ex


def _run(jobs: list[Job], ex: Examples, path, **kw) -> list:
    store = Store.create(path, {})
    try:
        return run_jobs(jobs, ex, store=store, progress=Progress(), device="cuda", **kw)
    finally:
        store.close()


def test_two_jobs_share_the_gpu_at_once_and_equal_the_local_executor(tmp_path, ray_gpu):
    executor = RayExecutor(gpus_per_job=0.5)
    warm, ex = _jobs(2, 1)
    _run(warm, ex, tmp_path / "warm", executor=executor)  # both workers up, CUDA initialised
    jobs, ex = _jobs(2, 60)
    local = _run(jobs, ex, tmp_path / "local")
    executor.runs.clear()
    on_ray = _run(jobs, ex, tmp_path / "ray", executor=executor)
    for a, b in zip(local, on_ray):
        for name in ("loss", "confidence", "margin", "pred", "correct"):
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    first, second = executor.runs
    assert first["pid"] != second["pid"]  # two workers ...
    assert max(first["started"], second["started"]) < min(first["ended"], second["ended"])  # ... at the same time
    print(f"\nshared GPU: job seconds {[round(float(r['seconds']), 2) for r in on_ray]}, overlap "
          f"{min(first['ended'], second['ended']) - max(first['started'], second['started']):.2f} s")


def test_a_memorization_on_quarter_gpus_equals_the_local_executor(tmp_path, ray_gpu):
    kw = dict(train_size=400, width=64, batch_size=32, epochs=10, models=32, chunk=8, device="cuda", progress=False)
    local = rotelab.memorization("synthetic", "mlp", runs_dir=tmp_path / "local", **kw)
    on_ray = rotelab.memorization("synthetic", "mlp", runs_dir=tmp_path / "ray", executor="ray", gpus_per_job=0.25,
                                  **kw)
    assert_same_outputs(stored_outputs(local.study_dir), stored_outputs(on_ray.study_dir))
    np.testing.assert_array_equal(local.arrays["baseline"]["memorization"], on_ray.arrays["baseline"]["memorization"])
