"""build_augment: per-sample draws, shapes kept, seeded, each transform sane, bad input refused."""

import pytest
import torch

from rotelab.errors import InvalidInputError
from rotelab.techniques.augment import build_augment
from rotelab.techniques.augment_technique import ALL_TRANSFORMS, DEFAULTS, TRANSFORMS

SHAPES = {"image": [(1, 8, 8), (3, 28, 28)], "sequence": [(1, 40), (2, 17)], "vector": [(16,)]}
CASES = [(kind, shape, name) for kind, names in TRANSFORMS.items() for shape in SHAPES[kind] for name in names]


def _sample(kind, shape, m=32, seed=0):
    """m copies of one asymmetric, non-constant sample: any difference between outputs is the draw."""
    g = torch.Generator().manual_seed(seed)
    one = torch.rand(shape, generator=g)
    if kind == "image":  # a bright left edge makes a flip visible
        one[..., :, 0] = 1.0
    return one.expand(m, *shape).clone()


@pytest.mark.parametrize("kind,shape,name", CASES)
def test_each_transform_draws_per_sample_and_keeps_shape(kind, shape, name):
    x = _sample(kind, shape)
    torch.manual_seed(1)
    out = build_augment((name,), kind=kind, feature_shape=shape)(x)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all()
    flat = out.flatten(1)
    distinct = len(torch.unique(flat, dim=0))
    # one draw per batch would give 1 distinct output; per sample gives many. Flips have two
    # faces; shifts and crops (whole-pixel boxes) have few outcomes, continuous draws have none alike.
    assert distinct >= {"flip": 2, "shift": 4, "crop": 4}.get(name, len(x))


@pytest.mark.parametrize("kind", list(TRANSFORMS))
def test_all_transforms_together_are_seeded_and_per_sample(kind):
    shape = SHAPES[kind][0]
    aug = build_augment(TRANSFORMS[kind], kind=kind, feature_shape=shape)
    x = _sample(kind, shape, m=16)
    torch.manual_seed(7)
    a = aug(x)
    torch.manual_seed(7)
    b = aug(x)
    torch.manual_seed(8)
    c = aug(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert len(torch.unique(a.flatten(1), dim=0)) == len(x)


def test_flip_is_the_mirror_image_or_the_image():
    x = _sample("image", (1, 8, 8), m=64)
    torch.manual_seed(0)
    out = build_augment(("flip",), kind="image", feature_shape=(1, 8, 8))(x)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all()
    assert 10 < int(mirrored.sum()) < 54  # p = 0.5 per sample


@pytest.mark.parametrize("name", ["rotate", "translate", "crop"])
def test_geometric_transforms_are_mild_and_keep_constant_images(name):
    aug = build_augment((name,), kind="image", feature_shape=(1, 28, 28))
    torch.manual_seed(0)
    flat = aug(torch.full((8, 1, 28, 28), 0.7))  # border padding and interpolation keep a constant
    torch.testing.assert_close(flat, torch.full_like(flat, 0.7))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 28), torch.linspace(-1, 1, 28), indexing="ij")
    blob = torch.exp(-((xx - 0.2) ** 2 + yy**2) / 0.2).expand(16, 1, 28, 28)
    out = aug(blob)
    corr = torch.nn.functional.cosine_similarity(out.flatten(1), blob.flatten(1))
    assert (corr > 0.85).all() and (corr < 1.0).all()


def test_image_noise_std_and_relative_noise():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    out = build_augment(("noise",), kind="image", feature_shape=(1, 28, 28))(x)
    assert (out - x).std().item() == pytest.approx(0.05, rel=0.05)
    seq = torch.randn(256, 1, 40) * torch.linspace(0.5, 4.0, 256)[:, None, None]
    out = build_augment(("noise",), kind="sequence", feature_shape=(1, 40))(seq)
    ratio = (out - seq).flatten(1).std(1) / seq.flatten(1).std(1)
    assert ratio.mean().item() == pytest.approx(0.05, rel=0.05)


def _shift_reference(row, s):
    """Slow, obviously correct: out[t] = row[clamp(t - s)]."""
    n = len(row)
    return torch.stack([row[min(max(t - s, 0), n - 1)] for t in range(n)])


def test_shift_matches_edge_padded_reference_and_stays_within_10_percent():
    torch.manual_seed(0)
    x = torch.randn(64, 2, 40)
    out = build_augment(("shift",), kind="sequence", feature_shape=(2, 40))(x)
    seen = set()
    for i in range(len(x)):
        found = [s for s in range(-4, 5)
                 if all(torch.equal(out[i, c], _shift_reference(x[i, c], s)) for c in range(2))]
        assert found, f"sample {i} is not an edge-padded shift by at most 4 of its input"
        seen.add(found[0])
    assert len(seen) >= 5


def test_scale_multiplies_each_sample_by_one_factor_in_range():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 40) + 0.5
    out = build_augment(("scale",), kind="sequence", feature_shape=(1, 40))(x)
    factor = out / x
    torch.testing.assert_close(factor, factor[:, :, :1].expand_as(factor))
    assert (factor >= 0.9).all() and (factor <= 1.1).all()


@pytest.mark.parametrize("kind", list(TRANSFORMS))
def test_gradients_flow_and_no_grad_works(kind):
    shape = SHAPES[kind][0]
    aug = build_augment(TRANSFORMS[kind], kind=kind, feature_shape=shape)
    x = torch.rand(4, *shape, requires_grad=True)
    aug(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.no_grad():
        assert not aug(x).requires_grad


def test_order_and_repeats_do_not_matter():
    x = _sample("image", (1, 8, 8), m=8)
    torch.manual_seed(3)
    a = build_augment(("crop", "flip", "rotate"), kind="image", feature_shape=(1, 8, 8))(x)
    torch.manual_seed(3)
    b = build_augment(("rotate", "flip", "crop", "flip"), kind="image", feature_shape=(1, 8, 8))(x)
    assert torch.equal(a, b)


def test_defaults_build_for_every_kind():
    for kind, names in DEFAULTS.items():
        shape = SHAPES[kind][0]
        assert build_augment(names, kind=kind, feature_shape=shape)(torch.rand(2, *shape)).shape == (2, *shape)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", list(TRANSFORMS))
def test_runs_on_cuda(kind):
    shape = SHAPES[kind][0]
    x = torch.rand(8, *shape, device="cuda")
    out = build_augment(TRANSFORMS[kind], kind=kind, feature_shape=shape)(x)
    assert out.device == x.device and out.dtype == x.dtype and out.shape == x.shape


@pytest.mark.parametrize("names,kind,shape,match", [
    (("rotate",), "sequence", (1, 40), "'rotate' does not apply to sequence data: use shift, scale, noise"),
    (("shift",), "image", (1, 8, 8), "'shift' does not apply to image data"),
    (("flip",), "vector", (16,), "'flip' does not apply to vector data: use noise"),
    (("warp",), "image", (1, 8, 8), "'warp' does not apply"),
    (("noise",), "audio", (1, 40), "unknown data kind 'audio'"),
    ((), "image", (1, 8, 8), "at least one transform"),
    (("noise",), "image", (8, 8), r"rank 3, got \(8, 8\)"),
    (("noise",), "sequence", (40,), r"rank 2, got \(40,\)"),
    (("noise",), "vector", (0,), r"rank 1, got \(0,\)"),
])
def test_invalid_combinations_raise(names, kind, shape, match):
    with pytest.raises(InvalidInputError, match=match):
        build_augment(names, kind=kind, feature_shape=shape)


def test_every_transform_name_belongs_to_a_kind():
    assert set(ALL_TRANSFORMS) == {n for names in TRANSFORMS.values() for n in names}
