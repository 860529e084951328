"""The built-in mlp starts from Glorot-uniform weights and biases, as scikit-learn's MLPClassifier."""

from __future__ import annotations

import math

import torch
from torch import nn

from rotelab.models import ModelSpec, build_model


def test_mlp_layers_are_glorot_uniform():
    torch.manual_seed(0)
    model = build_model(ModelSpec("mlp", width=300, depth=2), (1, 40), 10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(40, 300), (300, 300), (300, 10)]
    for m in linears:
        bound = math.sqrt(6.0 / (m.in_features + m.out_features))
        for t in (m.weight, m.bias):
            assert t.abs().max() <= bound
            # uniform on [-bound, bound]: the extremes are reached and the variance is bound²/3
            assert t.abs().max() > 0.9 * bound
        assert abs(m.weight.var().item() - bound**2 / 3) < 0.1 * bound**2 / 3


def test_mlp_init_follows_the_seed():
    spec = ModelSpec("mlp", width=16, depth=1)
    torch.manual_seed(3)
    a = build_model(spec, (8,), 4)
    torch.manual_seed(3)
    b = build_model(spec, (8,), 4)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
