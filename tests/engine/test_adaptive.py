"""PBT, gap feedback, replay and adaptive weight decay inside one job."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rotelab.engine import Members, Recipe, train_job
from rotelab.engine.adaptive import GapController, exploit, lineage, pbt_pairs, perturb
from rotelab.engine.hyper import AdaptiveDecay
from rotelab.engine.members import LoopMembers, StackedMembers, init_members
from rotelab.engine.recipe import Adaptive
from rotelab.models import ModelSpec, build_model


@pytest.fixture
def data():
    """Random labels on 12 features: every member can only memorize, so the gap widens."""
    rng = np.random.default_rng(3)
    n = 200
    x = rng.normal(size=(n, 12)).astype(np.float32)
    y = rng.integers(0, 4, n)
    test = np.zeros(n, bool)
    test[-40:] = True
    return x, y, test


def _members(k, n, rng, n_train=100):
    train = np.zeros((k, n), bool)
    val = np.zeros((k, n), bool)
    for i in range(k):
        p = rng.permutation(n - 40)
        train[i, p[:n_train]] = True
        val[i, p[n_train:]] = True
    return Members(np.arange(10, 10 + k), train, val)


def _run(data, recipe, members, job_seed=0):
    x, y, test = data
    spec = recipe.model
    return train_job(lambda: build_model(spec, (12,), 4), x, y, members=members, test_mask=test, recipe=recipe,
                     n_classes=4, device="cpu", job_seed=job_seed)


# ── PBT ──────────────────────────────────────────────────────────────────────────────────
def test_pbt_pairs_rank_within_each_group_and_copy_bottom_from_top():
    score = np.array([0.5, 0.9, 0.1, 0.7, 0.2, 0.3, 0.8, 0.6, 1.0, 0.0, 0.4, 0.45])
    loss = np.zeros(12)
    rng = np.random.default_rng(0)
    src, dst = pbt_pairs(score, loss, population=4, rng=rng)  # groups 0-3, 4-7, 8-11; one swap each
    assert dst.tolist() == [2, 4, 9]
    assert src.tolist() == [1, 6, 8]
    src, dst = pbt_pairs(score, loss, population=12, rng=rng)  # one group: bottom 3 from top 3
    assert sorted(dst.tolist()) == [2, 4, 9] and set(src.tolist()) <= {8, 1, 6}
    tie = pbt_pairs(np.array([0.5, 0.5]), np.array([0.2, 0.1]), population=2, rng=rng)
    assert tie[0].tolist() == [1] and tie[1].tolist() == [0]  # equal accuracy: lower loss wins


def test_perturb_multiplies_by_08_or_125_or_resamples_within_bounds():
    rng = np.random.default_rng(0)
    v = np.full(1000, 0.5)
    out = perturb(v, rng, low=0.01, high=10.0, log=True, resample=0.0)
    assert set(np.round(out, 6)) == {0.4, 0.625}
    out = perturb(v, rng, low=0.01, high=10.0, log=True, resample=1.0)
    assert out.min() >= 0.01 and out.max() <= 10.0 and len(np.unique(out)) > 900
    assert perturb(np.array([0.9]), rng, low=0.0, high=0.95, log=False, resample=0.0)[0] <= 0.95


def _trained_stack(k, loop=False):
    spec = ModelSpec("mlp", width=8)
    mods = init_members(lambda: build_model(spec, (12,), 4), range(k))
    net = LoopMembers(mods, torch.device("cpu")) if loop else StackedMembers(mods, torch.device("cpu"))
    params = [p for _, p in net.named_parameters()]
    opt = torch.optim.AdamW(params, lr=0.01)
    x = torch.randn(k, 20, 12)
    for _ in range(3):
        opt.zero_grad()
        net(x).square().sum().backward()
        opt.step()
    return net, opt


def _state(net, opt):
    """Every tensor of the members and the optimizer, per member: {name: [(K, ...) slices]}."""
    if net.vectorized:
        out = {}
        for name, p in net.params.items():
            out[name] = p.detach().clone()
            for key, v in opt.state[p].items():
                out[f"{name}/{key}"] = v.clone()
        return out
    return {f"{i}/{n}/{key}": v.clone() for i, m in enumerate(net.modules) for n, p in m.named_parameters()
            for key, v in {"param": p.detach(), **opt.state[p]}.items()}


@pytest.mark.parametrize("loop", [False, True])
def test_exploit_copies_parameters_and_optimizer_state_of_the_right_members_and_no_other(loop):
    net, opt = _trained_stack(6, loop=loop)
    before = _state(net, opt)
    lam = torch.arange(6.0)
    exploit(net, opt, np.array([2, 5]), np.array([0, 4]), [lam])
    after = _state(net, opt)
    copied = {0: 2, 4: 5}
    assert lam.tolist() == [2.0, 1.0, 2.0, 3.0, 5.0, 5.0]
    if loop:
        for name, v in after.items():
            member, rest = name.split("/", 1)
            src = copied.get(int(member), int(member))
            assert torch.equal(v, before[f"{src}/{rest}"]), name
        assert any("exp_avg_sq" in n for n in after) and any(n.endswith("/step") for n in after)
        return
    for name, v in after.items():
        if v.dim() == 0:  # a stacked parameter's Adam step count: one for all members
            assert torch.equal(v, before[name])
            continue
        for member in range(6):
            assert torch.equal(v[member], before[name][copied.get(member, member)]), (name, member)
    assert {n.split("/")[1] for n in after if "/" in n} == {"step", "exp_avg", "exp_avg_sq"}


def test_members_not_copied_are_bit_identical_to_a_run_without_the_exploit_step(data):
    rng = np.random.default_rng(0)
    members = _members(8, len(data[1]), rng)
    values = (0.01, 0.1, 0.3, 1.0, 0.02, 0.2, 0.5, 2.0)
    base = Recipe(model=ModelSpec("mlp", width=16, dropout=0.2), epochs=6, batch_size=25, lr=0.02,
                  member_values=(("l2", values),))
    pbt = _run(data, replace(base, adaptive=Adaptive("pbt", "l2", period=2, population=4, low=0.001, high=5,
                                                     log=True)), members)
    plain = _run(data, base, members)
    copied = (pbt["parent"] != np.arange(8)[:, None]).any(1)
    assert copied.any() and not copied.all()
    # a member copied at the start of an epoch continues from its source's weights
    for i in np.flatnonzero(copied):
        t = int(np.flatnonzero(pbt["parent"][i] != i)[0])
        assert pbt["parent"][i, t] // 4 == i // 4  # from its own group (its fold's members)
        assert not np.array_equal(pbt["loss"][i], plain["loss"][i])
    for i in np.flatnonzero(~copied):
        for key in ("loss", "margin", "pred", "train_loss", "val_acc", "test_loss"):
            np.testing.assert_array_equal(pbt[key][i], plain[key][i], err_msg=f"{key} of member {i}")
        np.testing.assert_array_equal(pbt["strength"][i], np.float32(values[i]))


def test_pbt_records_each_members_schedule_and_lineage_rebuilds_it(data):
    rng = np.random.default_rng(1)
    members = _members(4, len(data[1]), rng)
    recipe = Recipe(model=ModelSpec("mlp", width=16), epochs=6, batch_size=25,
                    member_values=(("l2", (0.01, 0.1, 1.0, 3.0)),),
                    adaptive=Adaptive("pbt", "l2", period=2, population=4, low=0.001, high=5, log=True, resample=0))
    out = _run(data, recipe, members)
    assert out["strength"].shape == (4, 6) and out["parent"].shape == (4, 6)
    for t in (2, 4):  # epochs 3 and 5 start with a copy: dst = perturbed src value
        (dst,) = np.flatnonzero(out["parent"][:, t] != np.arange(4))
        src = out["parent"][dst, t]
        ratio = out["strength"][dst, t] / out["strength"][src, t - 1]
        assert min(abs(ratio - 0.8), abs(ratio - 1.25)) < 1e-5
    assert not np.any(out["parent"][:, [0, 1, 3, 5]] != np.arange(4)[:, None])


def test_lineage_follows_parents_back_through_copies():
    strength = np.array([[1.0, 1.0, 9.0, 9.0],
                         [2.0, 2.0, 2.0, 2.5],
                         [3.0, 3.0, 3.0, 3.0]])
    parent = np.array([[0, 0, 1, 0],  # member 0 copied member 1 at the start of epoch 3
                       [1, 1, 1, 1],
                       [2, 2, 2, 0]])  # member 2 copied member 0 at the start of epoch 4
    np.testing.assert_array_equal(lineage(strength, parent, 0), [2.0, 2.0, 9.0, 9.0])
    np.testing.assert_array_equal(lineage(strength, parent, 2), [2.0, 2.0, 9.0, 3.0])
    np.testing.assert_array_equal(lineage(strength, parent, 1), strength[1])


def test_replay_follows_the_given_schedule(data):
    rng = np.random.default_rng(2)
    members = _members(2, len(data[1]), rng)
    schedule = ((0.1, 0.2, 0.4), (1.0, 0.5, 0.25))
    recipe = Recipe(model=ModelSpec("mlp", width=8), epochs=3, batch_size=25,
                    adaptive=Adaptive("replay", "l2", schedule=schedule))
    out = _run(data, recipe, members)
    np.testing.assert_allclose(out["strength"], np.array(schedule, dtype=np.float32))
    fixed = _run(data, replace(recipe, adaptive=None, member_values=(("l2", (0.1, 1.0)),)), members)
    assert not np.allclose(out["loss"], fixed["loss"])  # the schedule, not the first value, was followed


# ── gap feedback ─────────────────────────────────────────────────────────────────────────
def test_gap_controller_moves_the_strength_the_right_way_on_a_scripted_gap_sequence():
    ctl = GapController(targets=0.10, rate=1.25, band=0.02, low=0.001, high=10.0)
    gaps = [0.00, 0.05, 0.20, 0.30, 0.11, 0.09, -0.05, 0.50]
    want = ["down", "down", "up", "up", "same", "same", "down", "up"]
    s = np.array([1.0])
    for g, w in zip(gaps, want):
        new = ctl.step(s, np.array([g]))
        assert {"up": new > s, "down": new < s, "same": new == s}[w].all(), (g, w, s, new)
        s = new
    np.testing.assert_allclose(s, [1.0 / 1.25**3 * 1.25**3])
    # bounds hold, a strength of 0 can rise (from 1% of high), and a NaN gap changes nothing
    lin = GapController(targets=np.array([0.0, 0.0, 0.0]), low=0.0, high=0.8)
    out = lin.step(np.array([0.0, 0.79, 0.5]), np.array([0.5, 0.5, np.nan]))
    np.testing.assert_allclose(out, [0.01, 0.8, 0.5])


def test_gap_feedback_raises_the_strength_of_members_that_memorize(data):
    rng = np.random.default_rng(4)
    members = _members(2, len(data[1]), rng)
    recipe = Recipe(model=ModelSpec("mlp", width=64), epochs=12, batch_size=25, lr=0.02,
                    member_values=(("l2", (0.01, 0.01)),),
                    adaptive=Adaptive("gap", "l2", period=1, low=0.001, high=10, targets=(0.05, 0.05)))
    out = _run(data, recipe, members)
    assert (out["strength"][:, -1] > out["strength"][:, 0]).all()  # random labels: the gap only widens


# ── adaptive weight decay ────────────────────────────────────────────────────────────────
def test_awd_lambda_follows_its_formula_on_a_hand_checked_step():
    w = torch.tensor([[3.0, 4.0], [1.0, 0.0]])  # member 0: |w| = 5; member 1: |w| = 1
    w.grad = torch.tensor([[0.0, 2.0], [0.0, 0.5]])  # |g| = 2 and 0.5
    awd = AdaptiveDecay(2, torch.device("cpu"))
    awd.step([(w, None)], torch.tensor([0.5, 0.1]))
    # λ_t = λ_awd·|g|/|w| = 0.5·2/5 = 0.2 and 0.1·0.5/1 = 0.05; λ̄ = 0.1·0 + 0.9·λ_t
    torch.testing.assert_close(awd.lam_bar, torch.tensor([0.18, 0.045]))
    torch.testing.assert_close(w.grad, torch.tensor([[0.54, 2.72], [0.045, 0.5]]))  # g + λ̄·w
    w.grad = torch.tensor([[0.0, 5.0], [0.0, 0.5]])
    awd.step([(w, None)], torch.tensor([0.5, 0.1]))
    torch.testing.assert_close(awd.lam_bar, torch.tensor([0.1 * 0.18 + 0.9 * 0.5, 0.1 * 0.045 + 0.9 * 0.05]))
    torch.testing.assert_close(awd.epoch_mean(), torch.tensor([(0.18 + 0.468) / 2, (0.045 + 0.0495) / 2]))
    # the loop's per-member tensors give the same numbers
    a, b = torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0])
    a.grad, b.grad = torch.tensor([0.0, 2.0]), torch.tensor([0.0, 0.5])
    loop = AdaptiveDecay(2, torch.device("cpu"))
    loop.step([(a, 0), (b, 1)], torch.tensor([0.5, 0.1]))
    torch.testing.assert_close(loop.lam_bar, torch.tensor([0.18, 0.045]))


def test_awd_in_a_job_records_lambda_and_matches_one_hand_computed_sgd_step(data):
    x, y, test = data
    train = np.zeros((2, len(y)), bool)
    train[:, :50] = True
    members = Members(np.array([1, 2]), train, ~train & ~test)
    recipe = Recipe(model=ModelSpec("mlp", width=8, depth=1), epochs=1, batch_size=50, optimizer="sgd", momentum=0.0,
                    lr=0.1, schedule="constant", member_values=(("awd", (0.05, 0.5)),))
    out = _run(data, recipe, members)
    spec = recipe.model
    for i, seed in enumerate((1, 2)):
        (model,) = init_members(lambda: build_model(spec, (12,), 4), [seed])
        loss = torch.nn.functional.cross_entropy(model(torch.as_tensor(x[:50])), torch.as_tensor(y[:50]))
        grads = torch.autograd.grad(loss, list(model.parameters()))
        g = torch.sqrt(sum(t.square().sum() for t in grads))
        w = torch.sqrt(sum(p.detach().square().sum() for p in model.parameters()))
        assert out["awd_lambda"][i, 0] == pytest.approx(0.9 * (0.05, 0.5)[i] * float(g / w), rel=1e-4)
