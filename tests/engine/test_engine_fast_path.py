"""The hand-written stacked forward (``StackedMembers._fast``) is the vmap forward, only faster."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rotelab.engine import Members, Recipe, train_job
from rotelab.engine import members as members_mod
from rotelab.engine.members import StackedMembers, fast_plan, init_members
from rotelab.engine.train import evaluate, log_softmax
from rotelab.models import ModelSpec, build_model
from rotelab.models.zoo import Residual

CASES = [  # (family, width, depth, feature shape)
    ("mlp", 16, 2, (1, 12)),
    ("mlp", 8, 0, (5,)),
    ("cnn", 4, 2, (1, 8, 8)),
    ("cnn", 3, 1, (2, 5, 6)),
    ("cnn1d", 6, 2, (2, 20)),
    ("resnet", 4, 1, (3, 8, 8)),
    ("resnet", 2, 2, (1, 9, 11)),
]


def _pair(family, width, depth, shape, k=3, dropout=0.0):
    spec = ModelSpec(family, width=width, depth=depth, dropout=dropout)
    factory = lambda: build_model(spec, shape, 4)  # noqa: E731
    fast = StackedMembers(init_members(factory, range(k)), torch.device("cpu"))
    slow = StackedMembers(init_members(factory, range(k)), torch.device("cpu"))
    slow.plan = None
    return fast, slow


@pytest.mark.parametrize("family,width,depth,shape", CASES)
def test_fast_forward_and_gradients_equal_vmap(family, width, depth, shape):
    fast, slow = _pair(family, width, depth, shape)
    assert fast.plan is not None
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, *shape, generator=g)
    out_f, out_s = fast(x), slow(x)
    torch.testing.assert_close(out_f, out_s, rtol=1e-5, atol=1e-5)
    w = torch.randn(out_f.shape, generator=g)
    (out_f * w).sum().backward()
    (out_s * w).sum().backward()
    for key in fast.params:
        torch.testing.assert_close(fast.params[key].grad, slow.params[key].grad, rtol=1e-4, atol=1e-5)
    xs = torch.randn(9, *shape, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(fast.forward_shared(xs), slow.forward_shared(xs), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fast.forward_shared(xs), fast(xs.expand(3, *xs.shape)), rtol=1e-5, atol=1e-5)


def test_fast_dropout_draws_a_mask_per_member_and_is_off_in_eval():
    fast, slow = _pair("mlp", 64, 1, (1, 12), k=2, dropout=0.5)
    x = torch.ones(2, 5, 1, 12)
    x[1] = x[0]
    for key in fast.params:  # member 1 = member 0, in both
        for m in (fast, slow):
            m.params[key].data[1] = fast.params[key].data[0]
    out = fast(x)
    assert not torch.allclose(out[0], out[1])  # same weights and input, different masks
    fast.train(False)
    slow.train(False)
    shared = fast.forward_shared(x[0])
    torch.testing.assert_close(shared[0], shared[1])
    torch.testing.assert_close(shared, slow.forward_shared(x[0]), rtol=1e-5, atol=1e-5)


NORM_MODELS = {  # BatchNorm where the fast path meets it: after a conv, on raw inputs, in nested and residual blocks
    "conv-bn": lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                                     nn.Flatten(), nn.Linear(4 * 9, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)),
    "bn-first": lambda: nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 16, 3)),
    "vector-bn": lambda: nn.Sequential(nn.Flatten(), nn.BatchNorm1d(72, affine=False), nn.Linear(72, 3)),
    "conv1d-bn": lambda: nn.Sequential(nn.Flatten(2), nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.ReLU(),
                                       nn.AdaptiveAvgPool1d(2), nn.Flatten(), nn.Linear(8, 3)),
    "nested": lambda: nn.Sequential(nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)),
                                    nn.ReLU(), nn.Flatten(), nn.Dropout(0.0), nn.Linear(4 * 16, 3)),
    "residual": lambda: nn.Sequential(Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2))),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3)),
}


@pytest.mark.parametrize("name", NORM_MODELS)
def test_fast_batchnorm_equals_vmap_in_train_and_eval(name):
    factory = NORM_MODELS[name]
    fast = StackedMembers(init_members(factory, range(3)), torch.device("cpu"))
    slow = StackedMembers(init_members(factory, range(3)), torch.device("cpu"))
    slow.plan = None
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 2, 6, 6, generator=g)
    if name == "conv1d-bn":  # nn.Flatten(2) is not on the plan: this model runs under vmap
        assert fast.plan is None
        return
    assert fast.plan is not None
    for _ in range(2):  # two steps: the second normalizes with what the first left in the buffers
        out_f, out_s = fast(x), slow(x)
        torch.testing.assert_close(out_f, out_s, rtol=1e-5, atol=1e-5)
        (out_f * x.sum((2, 3, 4))[..., None]).sum().backward()
        (out_s * x.sum((2, 3, 4))[..., None]).sum().backward()
    for key in fast.params:
        torch.testing.assert_close(fast.params[key].grad, slow.params[key].grad, rtol=1e-4, atol=1e-4)
    for key in fast.buffers:
        torch.testing.assert_close(fast.buffers[key], slow.buffers[key], rtol=1e-5, atol=1e-6)
    fast.train(False)
    slow.train(False)
    with torch.no_grad():
        torch.testing.assert_close(fast.forward_shared(x[0]), slow.forward_shared(x[0]), rtol=1e-5, atol=1e-5)


def test_plan_leaves_what_it_cannot_run_to_vmap():
    assert fast_plan(nn.Sequential(nn.Linear(4, 4), nn.Tanh())) is None
    assert fast_plan(nn.Sequential(nn.Unflatten(1, (1, 8)), nn.Conv1d(1, 2, 3))) is None
    assert fast_plan(nn.Sequential(nn.Conv2d(2, 4, 3, groups=2))) is None
    assert fast_plan(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(6, 2))) is None  # Linear on a feature map
    assert fast_plan(nn.Linear(4, 2)) is None  # not a Sequential
    assert fast_plan(nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4, momentum=None))) is None  # a cumulative average
    assert fast_plan(nn.Sequential(nn.Flatten(), nn.BatchNorm2d(4))) is None  # on features, not a map
    assert fast_plan(nn.Sequential(Residual(nn.Sequential(nn.Flatten())), nn.Linear(4, 2))) is None
    assert fast_plan(nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.Tanh()))) is None  # nested, with a Tanh


def test_log_softmax_is_torch_log_softmax():
    for c in (2, 10, 16, 40):
        x = torch.randn(3, 7, c, dtype=torch.float64)
        torch.testing.assert_close(log_softmax(x), torch.log_softmax(x, -1))


@pytest.mark.parametrize("family,shape", [("mlp", (1, 12)), ("cnn", (1, 8, 8)), ("resnet", (1, 8, 8))])
def test_training_job_is_the_same_with_and_without_the_fast_path(monkeypatch, family, shape):
    rng = np.random.default_rng(0)
    n, k = 160, 3
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    y = rng.integers(0, 4, n)
    train = rng.random((k, n)) < 0.6
    test = np.zeros(n, bool)
    test[-40:] = True
    train[:, -40:] = False
    spec = ModelSpec(family, width=8)
    # resnet: the two paths round differently (the convolutions' memory layout), and on random
    # labels training amplifies that ~10x an epoch (1 epoch: 2e-5, 2: 2e-4, 3: 4e-3 apart)
    recipe = Recipe(model=spec, epochs=2 if family == "resnet" else 3, batch_size=32)

    def run():
        return train_job(lambda: build_model(spec, shape, 4), x, y, members=Members(np.arange(k), train, ~train),
                         test_mask=test, recipe=recipe, n_classes=4, device="cpu")

    fast = run()
    monkeypatch.setattr(members_mod, "fast_plan", lambda module: None)
    slow = run()
    for key in ("loss", "margin", "train_loss", "val_loss", "test_acc"):
        np.testing.assert_allclose(fast[key], slow[key], rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(fast["pred"], slow["pred"])


def test_evaluate_chunks_do_not_change_outputs():
    fast, _ = _pair("mlp", 16, 2, (1, 12), k=4)
    x = torch.randn(50, 1, 12)
    y = torch.randint(0, 4, (50,))
    a, b = evaluate(fast, x, y, chunk=7), evaluate(fast, x, y, chunk=50)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_fast_path_refuses_inputs_of_the_wrong_rank_so_make_members_can_fall_back():
    members = StackedMembers(init_members(lambda: nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(12, 2)),
                                          range(2)), torch.device("cpu"))
    assert members.plan is not None
    assert members(torch.zeros(2, 3, 1, 8)).shape == (2, 3, 2)
    with pytest.raises(ValueError, match="convolution input has 3 dims, expected 4"):
        members(torch.zeros(2, 3, 8))


@pytest.mark.parametrize("family,width,depth,shape", CASES)
def test_make_members_keeps_the_fast_path_for_builtin_models(family, width, depth, shape):
    spec = ModelSpec(family, width=width, depth=depth)
    members, reason = members_mod.make_members(lambda: build_model(spec, shape, 4), [0, 1], torch.device("cpu"),
                                               torch.zeros(2, *shape))
    assert reason is None and members.plan is not None  # not silently back on vmap


@pytest.mark.parametrize("family,shape", [("mlp", (1, 12)), ("cnn", (1, 8, 8)), ("resnet", (3, 8, 8))])
def test_fast_path_runs_under_bf16_autocast_with_fp32_gradients(family, shape):
    """What ``--precision bf16`` will wrap around the forward: the weights stay fp32 (the master
    copy the optimizer updates), so their gradients must come back fp32, close to fp32 training's."""
    fast, _ = _pair(family, 8, 1, shape)
    ref, _ = _pair(family, 8, 1, shape)
    x = torch.randn(3, 16, *shape, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(x)
    assert out.dtype == torch.bfloat16
    out.float().square().sum().backward()
    ref(x).square().sum().backward()
    for key, p in fast.params.items():
        assert p.dtype == p.grad.dtype == torch.float32
        g, g32 = p.grad.flatten(), ref.params[key].grad.flatten()
        # bf16 keeps 8 bits of mantissa: per layer ~0.4% error, compounding through a deep net
        assert torch.nn.functional.cosine_similarity(g, g32, dim=0) > 0.95, key
