"""The training step from fixed buffers with a tensor learning rate (``engine.graph_step``).

On a GPU with ``ROTELAB_CUDA_GRAPH=1`` that step is recorded once as a CUDA graph and replayed.
On the CPU the same path runs without the recording: here the tests check that reading the
batch from fixed buffers, a learning rate read from a tensor and the schedule run on a stand-in
train the same models as the plain step. The CUDA tests (skipped without a GPU) check that the
recorded step is used and trains the same models as the eager step on the GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import random_members
from rotelab.data import load_dataset
from rotelab.engine import Members, Recipe, graph_step, train_job
from rotelab.engine.graph_step import ReplayedStep
from rotelab.models import ModelSpec, build_model

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _bn_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(6 * 16, 10))


def _train(recipe: Recipe, *, k: int = 6, device: str = "cpu", data: str = "synthetic", factory=None,
           sizes: tuple[int, ...] | None = None):
    ds = load_dataset(data, train_size=400 if data != "synthetic" else None)
    x, y, train, val, test = random_members(ds, k, 150)
    if sizes is not None:  # members with fewer examples sit out whole steps (the freeze/thaw path)
        for i, n in enumerate(sizes):
            train[i, np.flatnonzero(train[i])[n:]] = False
    spec = recipe.model
    factory = factory or (lambda: build_model(spec, ds.feature_shape, ds.n_classes))
    return train_job(factory, x, y, members=Members(np.arange(k) + 7, train, val), test_mask=test, recipe=recipe,
                     n_classes=ds.n_classes, kind=ds.kind, device=device)


def _counting(monkeypatch) -> list[int]:
    """Turn the replayed step on for the CPU and count its steps."""
    calls: list[int] = []
    original = ReplayedStep.__call__

    def counted(self, bi, bw):
        calls.append(1)
        return original(self, bi, bw)

    monkeypatch.setattr(graph_step, "wanted", lambda device: True)
    monkeypatch.setattr(ReplayedStep, "__call__", counted)
    return calls


@pytest.mark.parametrize("recipe", [
    Recipe(model=ModelSpec("mlp", width=32), epochs=4, batch_size=32),
    Recipe(model=ModelSpec("mlp", width=32), epochs=4, batch_size=32, l2=5e-2),  # two groups, one lr tensor
    Recipe(model=ModelSpec("mlp", width=32), epochs=4, batch_size=32, schedule="constant", l1=1e-4, l2=1e-2,
           label_smoothing=0.1, early_stop=2),
    Recipe(model=ModelSpec("mlp", width=32, dropout=0.2), epochs=3, batch_size=200),  # batch > every member's set
], ids=["cosine", "cosine+l2", "constant+l1+l2+smoothing+early-stop", "dropout, one batch"])
def test_replayed_step_trains_the_same_models_as_the_plain_step(monkeypatch, recipe):
    plain = _train(recipe)
    calls = _counting(monkeypatch)
    replayed = _train(recipe)
    assert calls, "the replayed step was not used"
    assert not bool(replayed["cuda_graph"])  # no recording on the CPU
    for name in ("loss", "confidence", "val_loss", "train_loss"):
        np.testing.assert_allclose(replayed[name], plain[name], rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(replayed["pred"], plain["pred"])
    np.testing.assert_array_equal(replayed["best_epoch"], plain["best_epoch"])


def test_replayed_step_keeps_idle_members_and_batchnorm_statistics(monkeypatch):
    """Members of unequal training sets (some sit out whole steps) and a BatchNorm CNN on
    8x8 digits: the same models as the plain step, running statistics included."""
    recipe = Recipe(model=ModelSpec("custom"), epochs=3, batch_size=25)
    kw = dict(data="digits", factory=_bn_net, sizes=(150, 100, 60, 150))
    plain = _train(recipe, k=4, **kw)
    calls = _counting(monkeypatch)
    replayed = _train(recipe, k=4, **kw)
    assert calls and bool(replayed["vectorized"])
    np.testing.assert_allclose(replayed["loss"], plain["loss"], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(replayed["pred"], plain["pred"])


@pytest.mark.parametrize("recipe, why", [
    (Recipe(model=ModelSpec("mlp", width=16), epochs=1, optimizer="sgd"), "optimizer"),
    (Recipe(model=ModelSpec("mlp", width=16), epochs=1, mixup=0.2), "mixing"),
    (Recipe(model=ModelSpec("mlp", width=16), epochs=1, member_values=(("l2", (0.0, 0.1, 0.2, 0.3)),)),
     "per-member strengths"),
])
def test_steps_that_decide_on_the_host_stay_eager(monkeypatch, recipe, why):
    calls = _counting(monkeypatch)
    out = _train(recipe, k=4)
    assert not calls, why
    assert np.isfinite(out["loss"]).all()


def test_the_reasons_name_what_keeps_a_step_off_the_graph():
    assert graph_step.unsupported(vectorized=True, optimizer="adam", host_side=[]) is None
    assert "one after another" in graph_step.unsupported(vectorized=False, optimizer="adam", host_side=[])
    assert "sgd" in graph_step.unsupported(vectorized=True, optimizer="sgd", host_side=[])
    assert "augmentation" in graph_step.unsupported(vectorized=True, optimizer="adam", host_side=["augmentation"])
    assert not graph_step.wanted(torch.device("cpu"))


def test_stand_in_schedule_gives_torchs_cosine_learning_rates():
    opt = torch.optim.AdamW([torch.zeros(2, requires_grad=True)], lr=1e-2)
    real = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50)
    stand_in = graph_step.stand_in_schedule(1e-2, 50)
    for _ in range(50):
        opt.step()
        real.step()
        stand_in.step()
        assert stand_in.optimizer.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graph_is_recorded_and_trains_what_the_eager_step_trains(monkeypatch, precision):
    recipe = Recipe(model=ModelSpec("mlp", width=64), epochs=6, batch_size=32, precision=precision)
    monkeypatch.setenv(graph_step.ENV, "0")
    eager = _train(recipe, k=8, device="cuda")
    monkeypatch.setenv(graph_step.ENV, "1")
    graphed = _train(recipe, k=8, device="cuda")
    assert bool(graphed["cuda_graph"]) and not bool(eager["cuda_graph"])
    # the same kernels in the same order: the same models up to the rounding of a tensor learning rate
    acc_eager, acc_graph = eager["correct"].mean(1), graphed["correct"].mean(1)
    assert np.abs(acc_eager - acc_graph).max() <= 0.03
    np.testing.assert_allclose(graphed["train_loss"][:, 0], eager["train_loss"][:, 0], rtol=1e-3, atol=1e-4)


@needs_cuda
def test_cuda_graph_with_batchnorm_and_idle_members(monkeypatch):
    recipe = Recipe(model=ModelSpec("custom"), epochs=4, batch_size=25)
    kw = dict(k=4, device="cuda", data="digits", factory=_bn_net, sizes=(150, 100, 60, 150))
    monkeypatch.setenv(graph_step.ENV, "0")
    eager = _train(recipe, **kw)
    monkeypatch.setenv(graph_step.ENV, "1")
    graphed = _train(recipe, **kw)
    assert bool(graphed["cuda_graph"])
    assert np.abs(eager["correct"].mean(1) - graphed["correct"].mean(1)).max() <= 0.05
