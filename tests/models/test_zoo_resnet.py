"""The built-in ``resnet``: CIFAR ResNet-8/20 shapes, its documented size, and that it learns K-at-once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rotelab.data import load_dataset, make_dataset
from rotelab.engine import Members, Recipe, train_job
from rotelab.errors import InvalidInputError
from rotelab.models import ModelSpec, build_model, check_model_spec
from rotelab.models.zoo import Residual, resnet


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("width,depth,channels,expected", [(16, 1, 3, 78_042), (16, 3, 3, 272_474),
                                                           (32, 1, 3, 308_650), (16, 1, 1, 77_754)])
def test_parameter_counts_are_the_documented_ones(width, depth, channels, expected):
    model = build_model(ModelSpec("resnet", width=width, depth=depth), (channels, 32, 32), 10)
    assert _n_params(model) == expected
    documented = f"{expected:,}" if channels == 3 else f"{78_042 - expected} fewer"  # the docstring's wording
    assert documented in " ".join(resnet.__doc__.split())


def test_layout_is_he_et_al_cifar_resnet():
    model = build_model(ModelSpec("resnet", width=16, depth=3), (3, 32, 32), 10)
    blocks = [m for m in model if isinstance(m, Residual)]
    assert len(blocks) == 9  # 3 stages x 3 blocks: 6·3 + 2 = 20 weighted layers
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 1 + 18 and all(c.bias is None for c in convs)
    projections = [b for b in blocks if len(b.shortcut)]
    assert len(projections) == 2  # the first block of stages 2 and 3: 1x1 conv + BatchNorm
    model.eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert model(torch.zeros(2, 3, 45, 37)).shape == (2, 10)  # any side from 8 up: global average pool


def test_small_and_non_image_inputs_are_refused_with_the_fix():
    with pytest.raises(InvalidInputError, match=r"at least 8x8 \(it is built for 32x32 and up\), got 7x9; use 'cnn'"):
        build_model(ModelSpec("resnet"), (1, 7, 9), 10)
    with pytest.raises(InvalidInputError, match=r"needs image features \(C, H, W\), got feature shape \(64,\)"):
        check_model_spec(ModelSpec("resnet"), (64,), 10)
    with pytest.raises(InvalidInputError, match="depth"):
        check_model_spec(ModelSpec("resnet", depth=0), (3, 32, 32), 10)


def _cifar_like(n: int, seed: int = 0):
    """Class c: a smooth random colour template plus noise, (3, 32, 32)."""
    g = torch.Generator().manual_seed(seed)
    templates = F.interpolate(torch.rand(4, 3, 4, 4, generator=g), size=(32, 32), mode="bilinear")
    y = torch.arange(n) % 4
    x = (templates[y] + 0.25 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1)
    return make_dataset("cifar-like", x.numpy()[: n * 3 // 4], y.numpy()[: n * 3 // 4], x.numpy()[n * 3 // 4:],
                        y.numpy()[n * 3 // 4:], kind="image")


def _digits_32(train_size: int):
    ds = load_dataset("digits", train_size=train_size)

    def up(a):
        return F.interpolate(torch.from_numpy(a), size=(32, 32), mode="bilinear").numpy()

    return make_dataset("digits-32", up(ds.x_train), ds.y_train, up(ds.x_test), ds.y_test, kind="image")


@pytest.mark.parametrize("data", ["cifar-like", "digits-32"])
def test_resnet_learns_k_at_once(data):
    ds = _cifar_like(240) if data == "cifar-like" else _digits_32(300)
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    k = 2
    train = np.zeros((k, len(y)), bool)
    train[:, : ds.n_train] = True
    spec = ModelSpec("resnet", width=8)
    said = []
    out = train_job(lambda: build_model(spec, ds.feature_shape, ds.n_classes), x, y,
                    members=Members(np.arange(k), train, np.zeros_like(train)), test_mask=~train[0],
                    recipe=Recipe(model=spec, epochs=3, batch_size=10, lr=3e-3), n_classes=ds.n_classes, kind="image",
                    device="cpu", on_fallback=said.append, outputs=("correct",))
    assert out["vectorized"] and not said
    # 90 steps: far from trained (eval-mode BatchNorm statistics lag the weights early on), but learning
    chance = 1 / ds.n_classes
    assert out["test_acc"][:, -1].min() > chance + 0.3, out["test_acc"][:, -1]
