"""The engine on every device it can run on: the CPU always, a CUDA GPU where there is one.

The CUDA tests skip on a machine without a GPU (CI); they are what a session with a lent GPU
runs there (``pytest tests/engine/test_engine_devices.py``). What must hold on any device:
members trained K at a time learn what models trained alone learn, and ``--device cuda``
gives the same models as the CPU up to float rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import random_members
from rotelab.data import load_dataset
from rotelab.engine import Members, Recipe, train_job
from rotelab.engine.members import StackedMembers, init_members, make_members
from rotelab.models import ModelSpec, build_model

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


def _data(k: int, n_train: int = 150, name: str = "synthetic", train_size: int | None = None):
    """Member i trains on its own random n_train of the pool and validates on the rest."""
    ds = load_dataset(name, train_size=train_size)
    return (ds, *random_members(ds, k, n_train))


def _job(ds, x, y, members: Members, test, recipe: Recipe, device: str):
    spec = recipe.model
    return train_job(lambda: build_model(spec, ds.feature_shape, ds.n_classes), x, y, members=members,
                     test_mask=test, recipe=recipe, n_classes=ds.n_classes, kind=ds.kind, device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_members_of_a_job_learn_what_models_trained_alone_learn(device):
    """K = 8 members in one job vs the same 8 (seed, subset) pairs trained as 8 one-member jobs:
    the test-accuracy distributions agree (on the CPU the models are the same to float rounding;
    on a GPU batched kernels round differently, so only the distribution is compared)."""
    k = 8
    ds, x, y, train, val, test = _data(k)
    recipe = Recipe(model=ModelSpec("mlp", width=32), epochs=12, batch_size=32)
    seeds = np.arange(100, 100 + k)
    stacked = _job(ds, x, y, Members(seeds, train, val), test, recipe, device)
    alone = [_job(ds, x, y, Members(seeds[i:i + 1], train[i:i + 1], val[i:i + 1]), test, recipe, device)
             for i in range(k)]
    acc_stacked = stacked["correct"][:, test].mean(1)
    acc_alone = np.array([a["correct"][0, test].mean() for a in alone])
    assert acc_stacked.min() > 0.5  # they learned something (chance is 0.25)
    spread = acc_alone.std(ddof=1)
    # means within 2 standard errors of a difference of two 8-model means (and at most 2 points),
    # and the same spread to within a factor of 2
    assert abs(acc_stacked.mean() - acc_alone.mean()) <= min(0.02, 2 * spread * np.sqrt(2 / k)) + 1e-9
    assert 0.5 <= (acc_stacked.std(ddof=1) + 1e-3) / (spread + 1e-3) <= 2.0
    if device == "cpu":  # same models: each pair agrees example by example
        np.testing.assert_allclose(stacked["loss"], np.concatenate([a["loss"] for a in alone]), rtol=1e-3, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize("family,shape", [("mlp", (1, 40)), ("cnn", (1, 8, 8)), ("cnn1d", (1, 40)),
                                          ("resnet", (3, 8, 8))])
def test_cuda_fast_path_equals_vmap(family, shape):
    factory = lambda: build_model(ModelSpec(family, width=8, depth=2), shape, 4)  # noqa: E731
    dev = torch.device("cuda")
    fast = StackedMembers(init_members(factory, range(3)), dev)
    slow = StackedMembers(init_members(factory, range(3)), dev)
    slow.plan = None
    assert fast.plan is not None
    x = torch.randn(3, 16, *shape, device=dev)
    tol = dict(rtol=2e-3, atol=2e-3)  # cuDNN may run convolutions in TF32
    out_f, out_s = fast(x), slow(x)
    torch.testing.assert_close(out_f, out_s, **tol)
    out_f.square().sum().backward()
    out_s.square().sum().backward()
    for key in fast.params:
        torch.testing.assert_close(fast.params[key].grad, slow.params[key].grad, rtol=1e-2, atol=1e-2)


@needs_cuda
@pytest.mark.parametrize("family,data", [("mlp", "synthetic"), ("cnn", "digits")])
def test_cuda_trains_the_models_the_cpu_trains(family, data):
    """One job on both devices: same seeds, same batches; the trained models agree up to the
    rounding differences a few epochs amplify (accuracy within 3 points per member)."""
    k = 4
    ds, x, y, train, val, test = _data(k, name=data, train_size=300)
    recipe = Recipe(model=ModelSpec(family, width=16), epochs=6, batch_size=32, early_stop=3)
    seeds = np.arange(k)
    cpu = _job(ds, x, y, Members(seeds, train, val), test, recipe, "cpu")
    gpu = _job(ds, x, y, Members(seeds, train, val), test, recipe, "cuda")
    assert gpu["vectorized"] and set(cpu) == set(gpu)
    for key in cpu:
        assert np.shape(cpu[key]) == np.shape(gpu[key]), key
    np.testing.assert_allclose(gpu["correct"][:, test].mean(1), cpu["correct"][:, test].mean(1), atol=0.03)
    np.testing.assert_allclose(gpu["train_loss"], cpu["train_loss"], rtol=0.1, atol=0.02)


@needs_cuda
def test_cuda_batchnorm_model_trains_k_at_once():
    class WithNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))

        def forward(self, x):
            return self.net(x)

    k = 2
    ds, x, y, train, val, test = _data(k)
    members, reason = make_members(WithNorm, [0, 1], torch.device("cuda"), torch.as_tensor(x[:2]).cuda())
    assert members.vectorized and reason is None
    out = train_job(WithNorm, x, y, members=Members(np.arange(k), train, val), test_mask=test,
                    recipe=Recipe(epochs=8, batch_size=32), n_classes=4, device="cuda")
    assert out["vectorized"] and out["correct"][:, test].mean() > 0.5
    assert members.buffers["net.2.running_mean"].device.type == "cuda"


@needs_cuda
def test_cuda_techniques_run_in_one_job():
    """Dropout, augmentation, mixup, cutmix, label smoothing, L1, L2 and early stopping on the GPU."""
    k = 3
    ds, x, y, train, val, test = _data(k, name="digits", train_size=300)
    spec = ModelSpec("cnn", width=8, dropout=0.2)
    recipe = Recipe(model=spec, epochs=4, batch_size=32, augment=("crop", "noise"), mixup=0.2, cutmix=1.0,
                    label_smoothing=0.1, l1=1e-4, l2=0.1, early_stop=2)
    out = _job(ds, x, y, Members(np.arange(k), train, val), test, recipe, "cuda")
    assert np.isfinite(out["loss"]).all() and out["vectorized"]


@needs_cuda
@pytest.mark.parametrize("argv", [
    ["diagnose", "--data", "digits", "--model", "cnn", "--epochs", "3", "--seeds", "2"],
    ["compare", "--data", "synthetic", "--epochs", "3", "--folds", "2", "--techniques", "baseline,dropout,l2,augment"],
    ["memorization", "--data", "synthetic", "--train-size", "60", "--epochs", "3", "--models", "16", "--chunk", "8"],
])
def test_cli_studies_on_cuda(argv, tmp_path, cli):
    proc = cli(*argv, "--device", "cuda", "--runs-dir", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    study = json.loads(next(Path(tmp_path).glob("*/study.json")).read_text())
    assert study["context"]["device"].startswith("cuda")


@pytest.mark.skipif(CUDA, reason="checks the message a machine without a GPU gives")
def test_cuda_without_a_gpu_is_one_clear_line(tmp_path, cli):
    proc = cli("diagnose", "--data", "synthetic", "--epochs", "1", "--device", "cuda", "--runs-dir", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("Error: device 'cuda' was asked for but no CUDA GPU is available; "
                                   "use --device auto or cpu")
    assert not any(tmp_path.iterdir())  # nothing written


def test_auto_picks_the_cpu_here_and_cuda_where_there_is_one():
    from rotelab.engine.train import resolve_device

    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert resolve_device("cpu").type == "cpu"
