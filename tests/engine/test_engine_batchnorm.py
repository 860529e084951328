"""BatchNorm (and the other normalization layers) in the vectorized engine.

Each member keeps its own running statistics as a row of stacked (K, C) buffers; stacking must
not change what a member learns or how it evaluates, on the fast path (plain ``nn.Sequential``)
and under vmap (any other module) alike.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import random_members
from rotelab.data import flip_labels, load_dataset
from rotelab.engine import Members, Recipe, train_job
from rotelab.engine.members import StackedMembers, init_members, make_members
from rotelab.models import ModelSpec, build_model

CPU = torch.device("cpu")


def _layers(c_in: int = 1, side: int = 8, width: int = 8) -> list[nn.Module]:
    """A small BatchNorm CNN for (c_in, side, side) images: both kinds of BatchNorm, 10 classes.

    No bias before a BatchNorm, as usual (it would subtract it again). Why it matters here: such a
    bias has a true gradient of 0, so its gradient is rounding noise, which Adam scales up to
    full-size steps; the running mean follows the bias, and eval-mode outputs of two
    implementations (a stacked member and the same model alone) drift ~1e-2 apart within an epoch.
    """
    return [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(width * (side // 2) ** 2, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Linear(32, 10)]


def sequential_bn() -> nn.Module:
    """Runs on the stacked fast path."""
    return nn.Sequential(*_layers())


class ModuleBN(nn.Module):
    """The same layers in the user's own module class: runs under vmap."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*_layers()[:4])
        self.head = nn.Sequential(*_layers()[4:])

    def forward(self, x):
        return self.head(self.features(x))


FACTORIES = {"fast path": sequential_bn, "vmap": ModuleBN}


def _digits(k: int, *, n_train: int = 120, train_size: int = 400, noise: float = 0.0, seed: int = 0):
    """Member i trains on its own random n_train of the pool (all equal in size) and validates on the rest."""
    ds = load_dataset("digits", train_size=train_size)
    if noise:
        ds = flip_labels(ds, noise, seed=seed)
    return random_members(ds, k, n_train, seed)


def _job(factory, x, y, members: Members, test, recipe: Recipe, **kw):
    return train_job(factory, x, y, members=members, test_mask=test, recipe=recipe, n_classes=10, kind="image",
                     device="cpu", **kw)


@pytest.mark.parametrize("path", FACTORIES)
def test_batchnorm_cnn_trains_k_at_once(path):
    x, y, train, val, test = _digits(4, n_train=200)
    said = []
    out = _job(FACTORIES[path], x, y, Members(np.arange(4), train, val), test,
               Recipe(epochs=8, batch_size=20), on_fallback=said.append)
    assert out["vectorized"] and not said
    assert out["train_acc"][:, -1].min() > 0.9 and out["test_acc"][:, -1].min() > 0.6  # chance: 0.1


@pytest.mark.parametrize("path", FACTORIES)
def test_member_in_a_job_equals_the_member_trained_alone(path):
    """Equal subset sizes: no member's batches are padded beyond its own (see train._batch_plan)."""
    x, y, train, val, test = _digits(3)
    recipe = Recipe(epochs=4, batch_size=32)
    seeds = np.array([5, 6, 7])
    stacked = _job(FACTORIES[path], x, y, Members(seeds, train, val), test, recipe)
    alone = _job(FACTORIES[path], x, y, Members(seeds[1:2], train[1:2], val[1:2]), test, recipe)
    assert stacked["vectorized"] and alone["vectorized"]
    for key in ("loss", "margin", "val_loss", "train_loss"):
        np.testing.assert_allclose(stacked[key][1], alone[key][0], rtol=1e-4, atol=1e-5)
    assert not np.allclose(stacked["loss"][0], stacked["loss"][1])  # different models


def _stacked_and_modules(factory, k: int = 3):
    return StackedMembers(init_members(factory, range(k)), CPU), init_members(factory, range(k))


@pytest.mark.parametrize("path", FACTORIES)
def test_each_member_keeps_its_own_running_statistics(path):
    """A few steps on different batches: member k's running mean/var and batch count are those of
    module k trained alone on its batches, and they differ between members."""
    stacked, modules = _stacked_and_modules(FACTORIES[path])
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(3, 16, 1, 8, 8, generator=g) * torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1, 1)
        stacked(x).sum().backward()
        for i, m in enumerate(modules):
            m(x[i]).sum().backward()
    for i, m in enumerate(modules):
        for name, buf in m.named_buffers():
            torch.testing.assert_close(stacked.buffers[name][i], buf, rtol=1e-5, atol=1e-6)
    for name, buf in stacked.buffers.items():
        if name.endswith("num_batches_tracked"):
            assert buf.tolist() == [3, 3, 3]
        else:
            assert not torch.allclose(buf[0], buf[1]) and not torch.allclose(buf[1], buf[2]), name


@pytest.mark.parametrize("path", FACTORIES)
def test_eval_mode_uses_each_members_own_running_statistics(path):
    stacked, modules = _stacked_and_modules(FACTORIES[path])
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # member i: its own, distinct statistics
        for name, buf in stacked.buffers.items():
            if not name.endswith("num_batches_tracked"):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
    for i, m in enumerate(modules):
        m.load_state_dict(stacked.state_dicts()[i])
        m.eval()
    stacked.train(False)
    x = torch.randn(5, 1, 8, 8, generator=g)
    with torch.no_grad():
        out = stacked.forward_shared(x)
        for i, m in enumerate(modules):
            torch.testing.assert_close(out[i], m(x), rtol=1e-5, atol=1e-5)
        stacked.train(True)  # batch statistics instead: another function of x
        assert not torch.allclose(stacked.forward_shared(x), out, atol=1e-3)


def test_restore_brings_back_the_running_statistics_of_the_chosen_members():
    stacked, _ = _stacked_and_modules(sequential_bn)
    snap = stacked.snapshot()
    stacked(torch.randn(3, 16, 1, 8, 8)).sum().backward()
    after = stacked.snapshot()
    stacked.restore(snap, torch.tensor([True, False, True]))
    for name, buf in stacked.buffers.items():
        assert "running" not in name or not torch.equal(after[name][0], snap[name][0])  # the step moved them
        for i, source in ((0, snap), (1, after), (2, snap)):
            assert torch.equal(buf[i], source[name][i]), (name, i)


@pytest.mark.parametrize("path", FACTORIES)
def test_early_stopping_restores_the_best_epochs_running_statistics(path):
    """The final outputs come from each member's best epoch: evaluated with that epoch's weights
    and running statistics, they reproduce the validation loss recorded at that epoch."""
    x, y, train, val, test = _digits(3, n_train=200, noise=0.3)
    recipe = Recipe(epochs=12, batch_size=25, early_stop=2, schedule="constant")
    out = _job(FACTORIES[path], x, y, Members(np.arange(3), train, val), test, recipe)
    assert out["vectorized"] and (out["best_epoch"] < out["epochs_run"]).any()
    for k in range(3):
        best = out["best_epoch"][k]
        final_val = out["loss"][k][val[k]].mean()
        assert final_val == pytest.approx(out["val_loss"][k, best - 1], abs=1e-5)


def test_trying_a_step_leaves_the_running_statistics_as_initialised():
    members, reason = make_members(sequential_bn, [0, 1], CPU, torch.randn(2, 1, 8, 8))
    assert reason is None and members.plan is not None
    for name, buf in members.buffers.items():
        fresh = dict(sequential_bn().named_buffers())[name]
        assert torch.equal(buf, fresh.expand_as(buf)), name


@pytest.mark.parametrize("norm", [lambda: nn.GroupNorm(2, 8), lambda: nn.LayerNorm([8, 8, 8]),
                                  lambda: nn.InstanceNorm2d(8, affine=True, track_running_stats=True)])
def test_other_normalization_layers_vectorize(norm):
    def factory():
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), norm(), nn.ReLU(), nn.Flatten(), nn.Linear(512, 10))

    members, reason = make_members(factory, [0, 1], CPU, torch.randn(2, 1, 8, 8))
    assert reason is None and members.vectorized
    modules = init_members(factory, [0, 1])
    x = torch.randn(2, 6, 1, 8, 8)
    out = members(x)
    for i, m in enumerate(modules):
        torch.testing.assert_close(out[i], m(x[i]), rtol=1e-5, atol=1e-5)


def test_batchnorm_with_a_cumulative_average_falls_back_and_names_the_layer():
    def factory():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16, momentum=None), nn.Linear(16, 10))

    members, reason = make_members(factory, [0, 1], CPU, torch.randn(2, 1, 8, 8))
    assert not members.vectorized
    assert reason.startswith("layer '2' (BatchNorm1d) keeps a cumulative average")
