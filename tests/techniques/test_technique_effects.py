"""Each technique does what it is for, through the real engine (``train_job``) on small data."""

import numpy as np
import pytest
import torch

from rotelab.data import load_dataset, make_dataset
from rotelab.engine import Members, Recipe, train_job
from rotelab.engine import train as engine_train
from rotelab.engine.members import StackedMembers, make_members
from rotelab.models import ModelSpec, build_model
from rotelab.techniques import parse_cells

MLP = ModelSpec("mlp", width=64, depth=1)


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread is fastest, and on a busy machine OpenMP threads
    waiting for each other make each step tens of times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _examples(ds):
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    test = np.zeros(len(y), dtype=bool)
    test[ds.n_train :] = True
    return x, y, test


def _halves(n_pool, n_all, k, seed=0):
    """Member i trains on a random 2/3 of the pool and validates on the rest."""
    rng = np.random.default_rng(seed)
    train = np.zeros((k, n_all), dtype=bool)
    val = np.zeros((k, n_all), dtype=bool)
    for i in range(k):
        p = rng.permutation(n_pool)
        train[i, p[: 2 * n_pool // 3]] = True
        val[i, p[2 * n_pool // 3 :]] = True
    return Members(np.arange(k), train, val)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=300, seed=0)


@pytest.fixture(scope="module")
def noisy_digits():
    return load_dataset("digits", train_size=300, label_noise=0.3, seed=0)


def _train(ds, recipe, *, k=3, job_seed=0):
    x, y, test = _examples(ds)
    members = _halves(ds.n_train, len(y), k)
    factory = lambda: build_model(recipe.model, ds.feature_shape, ds.n_classes)  # noqa: E731
    out = train_job(factory, x, y, members=members, test_mask=test, recipe=recipe, n_classes=ds.n_classes,
                    kind=ds.kind, device="cpu", job_seed=job_seed)
    return out, members


@pytest.fixture
def trained_members(monkeypatch):
    """Keeps the members ``train_job`` trains: it returns no weights (see the report: a
    ``return_state`` option would make this spy unnecessary)."""
    seen = []

    def spy(*args, **kwargs):
        net, reason = make_members(*args, **kwargs)
        seen.append(net)
        return net, reason

    monkeypatch.setattr(engine_train, "make_members", spy)
    return seen


def test_l1_zeros_more_weights_than_l2(digits, trained_members):
    """At strengths that shrink the first layer about equally, L1 sets many weights to ~0
    and decoupled L2 almost none: L1's pull does not fade as a weight nears zero."""
    base = Recipe(model=MLP, epochs=15, batch_size=50)
    first = {}
    for name, recipe in (("l1", parse_cells("l1=1e-4")[0].apply(base, kind="image")),
                         ("l2", parse_cells("l2=1")[0].apply(base, kind="image")),
                         ("none", base)):
        out, _ = _train(digits, recipe)
        assert np.isfinite(out["train_loss"]).all()
        net = trained_members[-1]
        assert isinstance(net, StackedMembers)
        first[name] = net.params["1.weight"].detach().abs()  # (K, width, 64)
    near_zero = {n: (w < 1e-3).flatten(1).float().mean(1) for n, w in first.items()}  # (K,)
    mean_abs = {n: w.mean().item() for n, w in first.items()}
    assert mean_abs["l2"] < mean_abs["none"] and mean_abs["l1"] < mean_abs["none"]
    assert mean_abs["l2"] < 1.25 * mean_abs["l1"]  # comparable shrinkage...
    assert (near_zero["l1"] > 0.1).all()  # ...but only L1 makes zeros
    assert (near_zero["l1"] > 5 * near_zero["l2"]).all()
    assert (near_zero["l2"] < 0.05).all() and (near_zero["none"] < 0.05).all()


def test_dropout_is_random_in_training_and_off_in_evaluation(digits):
    recipe = parse_cells("dropout=0.5")[0].apply(Recipe(model=MLP), kind="image")
    assert recipe.model.dropout == 0.5
    factory = lambda: build_model(recipe.model, digits.feature_shape, digits.n_classes)  # noqa: E731
    x = torch.as_tensor(digits.x_train[:20])
    net, reason = make_members(factory, [0, 0, 1], torch.device("cpu"), x)
    assert reason is None
    torch.manual_seed(0)
    net.train(True)
    a, b = net.forward_shared(x), net.forward_shared(x)
    assert not torch.equal(a, b)  # a new mask every call
    assert not torch.equal(a[0], a[1])  # members 0 and 1 share weights but not masks
    net.train(False)
    a, b = net.forward_shared(x), net.forward_shared(x)
    assert torch.equal(a, b)
    torch.testing.assert_close(a[0], a[1])


def test_label_smoothing_lowers_confidence_on_training_examples(digits):
    base = Recipe(model=MLP, epochs=25, batch_size=50)
    plain, members = _train(digits, base)
    smooth, _ = _train(digits, parse_cells("label-smoothing=0.2")[0].apply(base, kind="image"))
    conf_plain = np.array([c[m].mean() for c, m in zip(plain["confidence"], members.train_mask)])
    conf_smooth = np.array([c[m].mean() for c, m in zip(smooth["confidence"], members.train_mask)])
    assert (conf_plain > 0.85).all()
    # the smoothed target puts 1 - 0.2 + 0.2/10 = 0.82 on the label: confidence stops near it
    assert (conf_smooth < 0.85).all()
    assert (conf_smooth < conf_plain - 0.1).all()


def test_early_stop_restores_each_members_best_epoch(noisy_digits):
    """30% flipped labels and a wide network: validation loss turns up within a few epochs."""
    base = Recipe(model=ModelSpec("mlp", width=128, depth=2), epochs=30, batch_size=50, schedule="constant")
    recipe = parse_cells("early-stop=3")[0].apply(base, kind="image")
    assert recipe.early_stop == 3
    out, members = _train(noisy_digits, recipe, k=4)
    np.testing.assert_array_equal(out["epoch"], np.arange(1, len(out["epoch"]) + 1))
    assert (out["epochs_run"] < recipe.epochs).all()  # every member stopped early...
    assert len(out["epoch"]) < recipe.epochs  # ...and so did training
    for k in range(members.k):
        run = out["epochs_run"][k]
        curve = out["val_loss"][k, :run]  # epochs after a member stopped do not count for it
        best = int(np.argmin(curve)) + 1
        assert out["best_epoch"][k] == best
        assert run - best == recipe.early_stop  # stopped after `patience` epochs without a gain
        final_val = out["loss"][k][members.val_mask[k]].mean()
        assert final_val == pytest.approx(curve[best - 1], abs=1e-5)
        final_acc = out["correct"][k][members.val_mask[k]].mean()
        assert final_acc == pytest.approx(out["val_acc"][k, best - 1], abs=1e-6)


def _sequences():
    rng = np.random.default_rng(0)
    y = np.arange(240) % 3
    t = np.linspace(0, 1, 24)
    x = np.sin(2 * np.pi * (y[:, None] + 1) * t) + 0.3 * rng.normal(size=(240, 24))
    return make_dataset("waves", x[:, None, :].astype(np.float32), y, kind="sequence", seed=0)


@pytest.mark.parametrize("data,cell,model", [
    ("digits", "augment+cutmix", ModelSpec("cnn", width=8, depth=1)),
    ("digits", "augment=flip+noise+mixup=0.4+cutmix", MLP),
    ("sequence", "augment+cutmix+mixup", ModelSpec("cnn1d", width=8, depth=2)),
    ("vector", "augment+mixup", MLP),
])
def test_engine_trains_with_augmentation_and_mixing(data, cell, model, digits):
    ds = {"digits": lambda: digits, "sequence": _sequences,
          "vector": lambda: load_dataset("synthetic", train_size=200)}[data]()
    base = Recipe(model=model, epochs=3, batch_size=50)
    recipe = parse_cells(cell)[0].apply(base, kind=ds.kind)
    assert recipe.augment and (recipe.mixup or recipe.cutmix)
    a, _ = _train(ds, recipe, k=2, job_seed=5)
    b, _ = _train(ds, recipe, k=2, job_seed=5)
    c, _ = _train(ds, base, k=2, job_seed=5)
    assert np.isfinite(a["loss"]).all() and np.isfinite(a["train_loss"]).all()
    np.testing.assert_array_equal(a["loss"], b["loss"])  # seeded: the same job gives the same models
    assert not np.array_equal(a["loss"], c["loss"])  # and the techniques changed the training
