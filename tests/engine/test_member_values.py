"""Per-member strengths: members of one job with their own l2, dropout, ε, α, augmentation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rotelab.engine import Members, Recipe, train_job
from rotelab.engine.members import LoopMembers, StackedMembers, init_members
from rotelab.engine.recipe import Adaptive
from rotelab.errors import InvalidInputError
from rotelab.models import ModelSpec, build_model
from rotelab.plan import Job, ModelRef
from rotelab.techniques.mixing import build_mixer


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n, k = 150, 3
    x = rng.normal(size=(n, 12)).astype(np.float32)
    y = rng.integers(0, 4, n)
    train = rng.random((k, n)) < 0.6
    test = np.zeros(n, bool)
    test[-30:] = True
    train[:, -30:] = False
    val = ~train & ~test
    return x, y, train, val, test


def _run(data, recipe, rows, seeds):
    x, y, train, val, test = data
    spec = recipe.model
    return train_job(lambda: build_model(spec, (12,), 4), x, y, members=Members(np.asarray(seeds), train[rows],
                     val[rows]), test_mask=test, recipe=recipe, n_classes=4, device="cpu")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("knob,values", [("l2", (0.0, 0.5, 2.0)), ("label_smoothing", (0.0, 0.1, 0.4))])
def test_per_member_strengths_in_one_job_equal_separate_jobs_with_fixed_strengths(data, optimizer, knob, values):
    base = Recipe(model=ModelSpec("mlp", width=16), epochs=4, batch_size=32, optimizer=optimizer, lr=0.05)
    together = _run(data, replace(base, member_values=((knob, values),)), [0, 1, 2], [5, 6, 7])
    for i, v in enumerate(values):
        alone = _run(data, replace(base, **{knob: v}), [i], [5 + i])
        for key in ("loss", "margin", "train_loss", "val_loss", "test_acc"):
            np.testing.assert_allclose(together[key][i], alone[key][0], rtol=1e-4, atol=1e-4)
    assert not np.allclose(together["loss"][0], together["loss"][2], atol=1e-3)  # the strengths did act


def _stacked(k, p, *, vmap):
    spec = ModelSpec("mlp", width=256, depth=1, dropout=0.5)
    net = StackedMembers(init_members(lambda: build_model(spec, (6,), 3), [0] * k), torch.device("cpu"))
    if vmap:
        net.plan = None
    net.set_dropout(p)
    return net


@pytest.mark.parametrize("vmap", [False, True])
def test_per_member_dropout_drops_each_members_own_share(vmap):
    from rotelab.engine.members import member_dropout

    p = torch.tensor([0.0, 0.3, 0.7])
    net = _stacked(3, p, vmap=vmap)  # the same weights in every member (seed 0 each)
    x = torch.randn(40, 6).expand(3, 40, 6)
    torch.manual_seed(0)
    net.train(True)
    out = net(x)
    net.train(False)
    clean = net(x)
    torch.testing.assert_close(out[0], clean[0])  # p = 0: no unit dropped
    assert not torch.allclose(out[1], clean[1]) and not torch.allclose(out[2], clean[2])
    ones = torch.ones(3, 4000, 256)
    masked = member_dropout(ones, p, "stacked")
    torch.testing.assert_close((masked == 0).float().mean((1, 2)), p, atol=0.01, rtol=0)  # each its own share
    torch.testing.assert_close(masked.mean((1, 2)), torch.ones(3), atol=0.02, rtol=0)  # kept units scaled up
    grouped = member_dropout(torch.ones(500, 3 * 8, 5), p, "grouped")  # after a convolution: (B, K·C, L)
    torch.testing.assert_close((grouped == 0).float().view(500, 3, 8, 5).mean((0, 2, 3)), p, atol=0.01, rtol=0)


def test_dropout_p_changed_in_place_reaches_the_next_forward_in_every_path():
    p = torch.tensor([0.5, 0.5])
    spec = ModelSpec("mlp", width=64, depth=1, dropout=0.5)
    loop = LoopMembers(init_members(lambda: build_model(spec, (6,), 3), [0, 0]), torch.device("cpu"))
    nets = [_stacked(2, p, vmap=False), _stacked(2, p, vmap=True), loop]
    loop.set_dropout(p)
    x = torch.randn(2, 30, 6)
    x[1] = x[0]
    p.copy_(torch.tensor([0.0, 0.0]))  # dropout off for both, through the same tensor
    for net in nets:
        net.train(True)
        out = net(x)
        net.train(False)
        torch.testing.assert_close(out, net(x))


def test_per_member_mixup_alpha_zero_leaves_that_members_batch_alone():
    mix = build_mixer(mixup=1.0, cutmix=0.0, kind="vector")
    torch.manual_seed(0)
    x = torch.randn(2, 50, 5)
    t = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 50)), 3).float()
    xm, tm = mix(x, t, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(xm[0], x[0])
    torch.testing.assert_close(tm[0], t[0])
    assert not torch.allclose(xm[1], x[1])


def test_per_member_augmentation_probability_zero_and_one(data):
    from rotelab.engine.hyper import augment_some

    x = torch.zeros(3, 200, 4)
    aug = torch.ones(3, 200, 4)
    out = augment_some(x, aug, torch.tensor([0.0, 1.0, 0.5]))
    assert out[0].sum() == 0 and out[1].min() == 1
    assert 0.35 < out[2, :, 0].mean() < 0.65
    base = Recipe(model=ModelSpec("mlp", width=8), epochs=2, batch_size=32, augment=("noise",))
    a = _run(data, replace(base, member_values=(("augment", (1.0, 1.0, 1.0)),)), [0, 1, 2], [1, 2, 3])
    assert a["train_loss"].shape == (3, 2)


def test_mixup_and_dropout_jobs_train_with_per_member_values(data):
    base = Recipe(model=ModelSpec("mlp", width=8, dropout=0.5), epochs=2, batch_size=32)
    out = _run(data, replace(base, member_values=(("dropout", (0.0, 0.2, 0.6)), ("mixup", (0.0, 0.5, 2.0)))),
               [0, 1, 2], [1, 2, 3])
    assert np.isfinite(out["loss"]).all()


@pytest.mark.parametrize("recipe,message", [
    (Recipe(member_values=(("l3", (0.1, 0.2, 0.3)),)), "unknown per-member strength 'l3'"),
    (Recipe(member_values=(("l2", (0.1, 0.2)),)), "per-member l2 has 2 values for a job of 3 members"),
    (Recipe(member_values=(("dropout", (0.1, 0.2, 1.0)),), model=ModelSpec("mlp", dropout=0.5)),
     r"per-member dropout 1.0 is outside its range \[0.0, 1.0\)"),
    (Recipe(member_values=(("l2", (0.1, -0.2, 0.3)),)), "per-member l2 -0.2 is outside"),
    (Recipe(member_values=(("dropout", (0.1, 0.2, 0.3)),)), "per-member dropout needs dropout layers"),
    (Recipe(member_values=(("augment", (0.1, 0.2, 0.3)),)), "needs the recipe's transforms"),
    (Recipe(epochs=3, adaptive=Adaptive("pbt", "l2", period=3, population=3)), "adaptive period 3 is impossible"),
    (Recipe(epochs=3, adaptive=Adaptive("pbt", "l2", period=1, population=2)), "must be >= 2 and divide"),
    (Recipe(epochs=3, adaptive=Adaptive("sgdr", "l2")), "unknown adaptive scheme 'sgdr'"),
    (Recipe(epochs=3, adaptive=Adaptive("gap", "l1")), "adaptive knob 'l1' is not a per-member strength"),
    (Recipe(epochs=3, adaptive=Adaptive("gap", "l2", targets=(0.1, 0.2))), "gap feedback needs 1 or 3 targets"),
    (Recipe(epochs=2, adaptive=Adaptive("replay", "l2", schedule=((1.0,),) * 3)), r"must be \(3 members, 2 epochs\)"),
    (Recipe(epochs=3, adaptive=Adaptive("gap", "l2", low=2.0, high=1.0, targets=(0.1,))), "low 2.0 > high 1.0"),
    (Recipe(epochs=3, early_stop=2, adaptive=Adaptive("pbt", "l2", population=3)), "use one or the other"),
])
def test_bad_per_member_settings_are_refused_in_one_line(data, recipe, message):
    with pytest.raises(InvalidInputError, match=message):
        _run(data, replace(recipe, model=replace(recipe.model, width=4)), [0, 1, 2], [1, 2, 3])


def test_a_recipe_without_the_new_settings_keeps_its_stored_key():
    """Jobs stored before per-member strengths existed are found again: the key of a plain job
    is the one computed by the code before them (literal below)."""
    members = Members(np.arange(2), np.eye(2, 6, dtype=bool), np.eye(2, 6, k=2, dtype=bool))
    job = Job("x", Recipe(model=ModelSpec("mlp", width=8), epochs=3), members, 0, ModelRef(lambda: None, "fp"))
    assert job.key("data") == KEY_BEFORE
    assert "member_values" not in job.recipe.to_dict() and "adaptive" not in job.recipe.to_dict()


KEY_BEFORE = "d69aea57983cb901b2cd"  # Job.key of this job on main before per-member strengths
