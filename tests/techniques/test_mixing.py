"""build_mixer: mixing stays inside each member, targets follow the inputs, λ ~ Beta(α, α)."""

import numpy as np
import pytest
import torch
from scipy import stats

from rotelab.errors import InvalidInputError
from rotelab.techniques.mixing import build_mixer

FEATURES = {"image": (1, 6, 5), "sequence": (2, 20), "vector": (7,)}
SETTINGS = [("mixup", 0.4, 0.0), ("cutmix", 0.0, 1.0), ("both", 0.4, 1.0)]


def _labelled(kind, k, b, n_classes=None):
    """x[k, i] is filled with the constant 100·k + i and labelled with class i (member's own
    block of classes when n_classes = k·b), so every output value and target says where it came from."""
    n_classes = n_classes or b
    value = 100.0 * torch.arange(k)[:, None] + torch.arange(b)[None, :]  # (K, B)
    x = value.view(k, b, *([1] * len(FEATURES[kind]))).expand(k, b, *FEATURES[kind]).clone()
    cls = torch.arange(b).expand(k, b) + (b * torch.arange(k)[:, None] if n_classes == k * b else 0)
    t = torch.nn.functional.one_hot(cls, n_classes).float()
    return x, t


@pytest.mark.parametrize("kind", list(FEATURES))
@pytest.mark.parametrize("name,mixup,cutmix", SETTINGS)
def test_never_mixes_across_members(kind, name, mixup, cutmix):
    if kind == "vector" and cutmix:
        pytest.skip("cutmix does not apply to vectors")
    k, b = 5, 8
    x, t = _labelled(kind, k, b, n_classes=k * b)
    torch.manual_seed(0)
    xo, to = build_mixer(mixup=mixup, cutmix=cutmix, kind=kind)(x, t)
    assert xo.shape == x.shape and to.shape == t.shape and xo.dtype == x.dtype
    for m in range(k):
        assert xo[m].min() >= 100 * m - 1e-3 and xo[m].max() <= 100 * m + b - 1 + 1e-3
        outside = torch.ones(k * b, dtype=torch.bool)
        outside[m * b : (m + 1) * b] = False
        assert to[m][:, outside].abs().max() == 0
    torch.testing.assert_close(to.sum(-1), torch.ones(k, b))
    assert not torch.equal(xo, x)


@pytest.mark.parametrize("kind", list(FEATURES))
def test_mixup_inputs_and_targets_use_the_same_lambda(kind):
    k, b = 4, 10
    x, t = _labelled(kind, k, b)
    torch.manual_seed(1)
    xo, to = build_mixer(mixup=0.5, cutmix=0.0, kind=kind)(x, t)
    # a constant sample stays constant; its value is the target-weighted mean of the labels
    expected = to @ torch.arange(b, dtype=torch.float32) + 100.0 * torch.arange(k)[:, None]
    flat = xo.flatten(2)
    torch.testing.assert_close(flat, expected.unsqueeze(-1).expand_as(flat), rtol=0, atol=1e-4)


def _partner_share(to):
    """For one-hot own-class targets (class i for sample i): the partner's weight 1 - t[i, i],
    kept only where the partner is another example (a sample paired with itself shows nothing)."""
    own = torch.diagonal(to, dim1=-2, dim2=-1)  # (K, B)
    other = to.sum(-1) - own
    return (1 - own)[other > 0]


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_mixup_lambda_follows_beta(alpha):
    k, b = 300, 16
    x, t = _labelled("vector", k, b)
    torch.manual_seed(2)
    _, to = build_mixer(mixup=alpha, cutmix=0.0, kind="vector")(x, t)
    share = _partner_share(to).numpy()
    assert len(share) > 0.85 * k * b  # a random permutation has few fixed points
    assert stats.kstest(share, stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    assert share.mean() == pytest.approx(0.5, abs=0.02)


def test_mixup_lambda_is_drawn_per_sample():
    x, t = _labelled("vector", 1, 64)
    torch.manual_seed(3)
    _, to = build_mixer(mixup=1.0, cutmix=0.0, kind="vector")(x, t)
    assert len(np.unique(_partner_share(to).numpy())) > 50


@pytest.mark.parametrize("kind", ["image", "sequence"])
def test_cutmix_target_weight_equals_pasted_area(kind):
    k, b = 6, 12
    x, t = _labelled(kind, k, b)
    torch.manual_seed(4)
    xo, to = build_mixer(mixup=0.0, cutmix=1.0, kind=kind)(x, t)
    for m in range(k):
        for i in range(b):
            values = xo[m, i].flatten() - 100 * m
            own = values == i
            partner = int(values[~own][0]) if (~own).any() else i
            # a box: every element is the sample's own value or one partner's, nothing blended
            assert torch.all(own | (values == partner))
            pasted = float((~own).float().mean())
            assert to[m, i, partner].item() == pytest.approx(pasted if partner != i else 1.0, abs=1e-6)
            assert to[m, i, i].item() == pytest.approx(1 - pasted, abs=1e-6)


def test_cutmix_pastes_a_box_and_area_follows_beta():
    k, b, h, w = 400, 8, 16, 16
    x = torch.zeros(k, b, 1, h, w)
    t = torch.nn.functional.one_hot(torch.zeros(k, b, dtype=torch.long), 2).float()
    x[:, ::2] = 1.0  # half the batch is ones: a pasted one-box inside a zero image is visible
    t[:, ::2] = torch.tensor([0.0, 1.0])
    torch.manual_seed(5)
    xo, to = build_mixer(mixup=0.0, cutmix=1.0, kind="image")(x, t)
    zeros_in = xo[:, 1::2, 0]  # (K, B/2, H, W): ones pasted into zero images
    areas = []
    for img, tgt in zip(zeros_in.reshape(-1, h, w), to[:, 1::2].reshape(-1, 2)):
        rows, cols = img.any(1), img.any(0)
        assert int(img.sum()) == int(rows.sum()) * int(cols.sum())  # filled rectangle
        if rows.any():  # contiguous runs
            r, c = rows.nonzero().flatten(), cols.nonzero().flatten()
            assert r.max() - r.min() + 1 == len(r) and c.max() - c.min() + 1 == len(c)
        area = float(img.mean())
        assert tgt[1].item() == pytest.approx(area, abs=1e-6)
        areas.append(area)
    # with α = 1 the asked-for area is uniform; clipping at the edges only makes it smaller
    areas = np.array(areas)
    assert 0.15 < areas.mean() < 0.5 and areas.max() > 0.8


def test_both_on_picks_one_method_per_member_and_step():
    k, b = 200, 10
    x, t = _labelled("image", k, b)
    torch.manual_seed(6)
    xo, _ = build_mixer(mixup=1.0, cutmix=1.0, kind="image")(x, t)
    flat = (xo - 100.0 * torch.arange(k).view(k, 1, 1, 1, 1)).flatten(2)  # (K, B, H·W)
    constant = (flat == flat[..., :1]).all(-1).all(1)  # mixup keeps constant samples constant
    whole = torch.isclose(flat, flat.round(), atol=1e-4).all(-1).all(1)  # cutmix pastes whole labels
    assert (constant | whole).all()  # each member's batch is one method or the other, never both
    assert 0.35 < (~whole).float().mean().item() < 0.65  # chosen per member with p = 0.5


@pytest.mark.parametrize("name,mixup,cutmix", SETTINGS)
def test_seeded_and_differentiable(name, mixup, cutmix):
    x, t = _labelled("sequence", 3, 6)
    mix = build_mixer(mixup=mixup, cutmix=cutmix, kind="sequence")
    torch.manual_seed(9)
    a = mix(x, t)
    torch.manual_seed(9)
    b = mix(x, t)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    xr = x.clone().requires_grad_(True)
    mix(xr, t)[0].sum().backward()
    assert xr.grad is not None
    with torch.no_grad():
        assert not mix(xr, t)[0].requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda():
    x, t = _labelled("image", 3, 6)
    xo, to = build_mixer(mixup=0.2, cutmix=1.0, kind="image")(x.cuda(), t.cuda())
    assert xo.is_cuda and to.is_cuda


@pytest.mark.parametrize("kwargs,match", [
    (dict(mixup=0.0, cutmix=1.0, kind="vector"), "cutmix needs images or sequences, got vector data"),
    (dict(mixup=0.0, cutmix=0.0, kind="image"), "mixup α > 0 or cutmix α > 0"),
    (dict(mixup=-0.1, cutmix=0.0, kind="image"), r"mixup α must be in \[0.0, inf\], got -0.1"),
    (dict(mixup=0.0, cutmix=float("nan"), kind="image"), "cutmix α must be finite"),
    (dict(mixup=0.2, cutmix=0.0, kind="audio"), "unknown data kind 'audio'"),
])
def test_invalid_settings_raise(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        build_mixer(**kwargs)


def test_wrong_batch_shape_raises():
    mix = build_mixer(mixup=0.2, cutmix=0.0, kind="image")
    with pytest.raises(InvalidInputError, match=r"x \(K, B, C, H, W\).*got \(2, 3, 8, 8\)"):
        mix(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 10))
