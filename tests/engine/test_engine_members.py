"""The engine trains K independent models at once: stacking must not change what a member learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rotelab.data import load_dataset
from rotelab.engine import Members, Recipe, train_job
from rotelab.engine.members import LoopMembers, StackedMembers, init_members, make_members
from rotelab.models import ModelSpec, build_model


def _setup(k: int, *, n_train=120, seed=0):
    ds = load_dataset("synthetic")
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    n = len(y)
    rng = np.random.default_rng(seed)
    train = np.zeros((k, n), bool)
    val = np.zeros((k, n), bool)
    for i in range(k):
        p = rng.permutation(ds.n_train)
        train[i, p[:n_train]] = True
        val[i, p[n_train:]] = True
    test = np.zeros(n, bool)
    test[ds.n_train:] = True
    return ds, x, y, train, val, test


def _train(ds, x, y, members, test, recipe, **kw):
    spec = recipe.model
    return train_job(lambda: build_model(spec, ds.feature_shape, ds.n_classes), x, y, members=members,
                     test_mask=test, recipe=recipe, n_classes=ds.n_classes, kind=ds.kind, device="cpu", **kw)


def test_member_alone_equals_member_in_a_stack():
    ds, x, y, train, val, test = _setup(3)
    recipe = Recipe(model=ModelSpec("mlp", width=32), epochs=4, batch_size=32)
    stacked = _train(ds, x, y, Members(np.array([5, 6, 7]), train, val), test, recipe)
    alone = _train(ds, x, y, Members(np.array([6]), train[1:2], val[1:2]), test, recipe)
    assert stacked["vectorized"] and alone["vectorized"]
    np.testing.assert_allclose(stacked["loss"][1], alone["loss"][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stacked["val_loss"][1], alone["val_loss"][0], rtol=1e-4, atol=1e-5)
    # and the members really are different models
    assert not np.allclose(stacked["loss"][0], stacked["loss"][1])


def test_same_config_and_seed_give_identical_numbers():
    ds, x, y, train, val, test = _setup(2)
    recipe = Recipe(model=ModelSpec("mlp", width=16, dropout=0.3), epochs=3, batch_size=50)
    a = _train(ds, x, y, Members(np.array([0, 1]), train, val), test, recipe, job_seed=3)
    b = _train(ds, x, y, Members(np.array([0, 1]), train, val), test, recipe, job_seed=3)
    for key in ("loss", "margin", "pred", "train_loss", "val_acc"):
        np.testing.assert_array_equal(a[key], b[key])


def test_outputs_are_consistent_with_each_other():
    ds, x, y, train, val, test = _setup(2)
    out = _train(ds, x, y, Members(np.array([0, 1]), train, val), test, Recipe(model=ModelSpec("mlp"), epochs=2))
    n = len(y)
    for key in ("loss", "confidence", "margin", "pred", "correct"):
        assert out[key].shape == (2, n)
    np.testing.assert_allclose(out["confidence"], np.exp(-out["loss"]), rtol=1e-5)
    p = out["confidence"].astype(np.float64)
    ok = (p > 1e-6) & (p < 1 - 1e-6)
    np.testing.assert_allclose(out["margin"][ok], np.log(p / (1 - p))[ok], rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(out["correct"], out["pred"] == y[None])
    # curves are masked means of the per-example arrays (last epoch = final state, no early stop)
    train_acc = (out["correct"] * train).sum(1) / train.sum(1)
    np.testing.assert_allclose(out["train_acc"][:, -1], train_acc, rtol=1e-6)
    assert out["train_loss"].shape == (2, 2) and list(out["epoch"]) == [1, 2]


def test_training_actually_fits_the_training_set():
    ds, x, y, train, val, test = _setup(2)
    out = _train(ds, x, y, Members(np.array([0, 1]), train, val), test,
                 Recipe(model=ModelSpec("mlp", width=128), epochs=40, batch_size=40))
    assert out["train_acc"][:, -1].min() > 0.95  # memorizes 120 noisy examples
    assert out["train_loss"][:, -1].max() < out["train_loss"][:, 0].min()


def test_loop_fallback_matches_stacked_members():
    ds, x, y, train, val, test = _setup(2)
    spec = ModelSpec("mlp", width=16)
    xt = torch.as_tensor(x[:8])
    modules = init_members(lambda: build_model(spec, ds.feature_shape, ds.n_classes), [0, 1])
    stacked = StackedMembers(modules, torch.device("cpu"))
    loop = LoopMembers(init_members(lambda: build_model(spec, ds.feature_shape, ds.n_classes), [0, 1]),
                       torch.device("cpu"))
    stacked.train(False)
    loop.train(False)
    with torch.no_grad():
        np.testing.assert_allclose(stacked.forward_shared(xt).numpy(), loop.forward_shared(xt).numpy(), atol=1e-5)


class _WithSpectralNorm(nn.Module):
    """A layer vmap cannot run: spectral norm's power iteration writes its buffers with out= ops."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.utils.parametrizations.spectral_norm(nn.Linear(32, 4)))

    def forward(self, x):
        return self.net(x)


def test_unstackable_model_trains_through_the_fallback_and_names_the_layer():
    ds, x, y, train, val, test = _setup(2)
    reasons = []
    out = train_job(_WithSpectralNorm, x, y, members=Members(np.array([0, 1]), train, val), test_mask=test,
                    recipe=Recipe(epochs=30, batch_size=40), n_classes=4, device="cpu",
                    on_fallback=reasons.append)
    assert not out["vectorized"]
    assert len(reasons) == 1 and reasons[0].startswith("layer 'net.2.parametrizations.weight.0' (_SpectralNorm): ")
    assert out["train_acc"][:, -1].min() > 0.8  # it trained (chance: 0.25)


def test_make_members_stacks_plain_models():
    spec = ModelSpec("cnn", width=4)
    members, reason = make_members(lambda: build_model(spec, (1, 8, 8), 10), [0, 1, 2], torch.device("cpu"),
                                   torch.zeros(2, 1, 8, 8))
    assert reason is None and members.vectorized
    assert members(torch.zeros(3, 5, 1, 8, 8)).shape == (3, 5, 10)


@pytest.mark.parametrize("model,data,size", [("mlp", "digits", 400), ("cnn", "digits", 400), ("cnn1d", "mnist1d", 1000)])
def test_each_builtin_model_learns_its_data(model, data, size):
    ds = load_dataset(data, train_size=size)
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    train = np.zeros((1, len(y)), bool)
    train[0, : ds.n_train] = True
    test = ~train[0]
    spec = ModelSpec(model, width={"mlp": 64, "cnn": 16, "cnn1d": 32}[model])
    out = train_job(lambda: build_model(spec, ds.feature_shape, ds.n_classes), x, y,
                    members=Members(np.array([0]), train, np.zeros_like(train)), test_mask=test,
                    recipe=Recipe(model=spec, epochs=15), n_classes=10, kind=ds.kind, device="cpu")
    assert out["test_acc"][0, -1] > 0.3  # far above the 10% of chance


def test_early_stopping_refuses_a_member_without_validation_examples():
    from rotelab.errors import InvalidInputError

    ds, x, y, train, val, test = _setup(2)
    val[1] = False
    with pytest.raises(InvalidInputError, match="member 1 of this job has no validation examples"):
        _train(ds, x, y, Members(np.array([0, 1]), train, val), test,
               Recipe(model=ModelSpec("mlp", width=8), epochs=2, early_stop=1))


def test_training_leaves_the_callers_random_stream_alone():
    ds, x, y, train, val, test = _setup(2)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    _train(ds, x, y, Members(np.array([0, 1]), train, val), test,
           Recipe(model=ModelSpec("mlp", width=8, dropout=0.2), epochs=1))
    assert torch.equal(torch.rand(4), expected)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_member_with_fewer_examples_trains_as_it_would_alone(optimizer):
    """A member with 2 batches in a job whose other member has 5 sits out 3 steps: it must not
    move on them (Adam's momentum would move it), and its random stream must not change."""
    ds, x, y, train, val, test = _setup(2, n_train=240)
    train[0, np.flatnonzero(train[0])[90:]] = False  # member 0: 90 examples, member 1: 240
    recipe = Recipe(model=ModelSpec("mlp", width=32), epochs=3, batch_size=50, optimizer=optimizer,
                    schedule="constant", lr=1e-2 if optimizer == "adam" else 0.1)
    both = _train(ds, x, y, Members(np.array([3, 4]), train, val), test, recipe)
    alone = _train(ds, x, y, Members(np.array([3]), train[:1], val[:1]), test, recipe)
    if optimizer == "sgd":  # (momentum 0.9) exact: before idle members were frozen, up to 1.4 apart
        np.testing.assert_allclose(both["loss"][0], alone["loss"][0], rtol=1e-5, atol=1e-5)
    else:  # Adam keeps one step count per weight tensor, shared by the members, so its bias
        # correction differs for a member that sat steps out: close, not equal (before: mean 0.22, 83%)
        assert np.abs(both["loss"][0] - alone["loss"][0]).mean() < 0.1
        assert (both["pred"][0] == alone["pred"][0]).mean() >= 0.9
