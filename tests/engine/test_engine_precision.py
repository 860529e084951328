"""``precision="bf16"``: the forward pass under bf16 autocast, fp32 weights and optimizer state."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import random_members
from rotelab.data import load_dataset
from rotelab.engine import Members, Recipe, train_job
from rotelab.models import ModelSpec, build_model


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_bf16_trains_close_to_fp32_and_keeps_fp32_weights(model):
    ds = load_dataset("digits", train_size=300)
    x, y, train, val, test = random_members(ds, 3, 200)
    spec = ModelSpec(model, width=16).resolved()
    out = {}
    for precision in ("fp32", "bf16"):
        recipe = Recipe(model=spec, epochs=8, batch_size=50, precision=precision)
        out[precision] = train_job(lambda: build_model(spec, ds.feature_shape, 10), x, y,
                                   members=Members(np.arange(3), train, val), test_mask=test, recipe=recipe,
                                   n_classes=10, kind="image", device="cpu")
    assert out["bf16"]["vectorized"]
    assert not np.array_equal(out["bf16"]["loss"], out["fp32"]["loss"])  # it really ran in bf16
    np.testing.assert_allclose(out["bf16"]["test_acc"][:, -1], out["fp32"]["test_acc"][:, -1], atol=0.06)


def test_bf16_is_part_of_the_recipe_only_when_on(tmp_path):
    import rotelab
    from rotelab.errors import InvalidInputError

    assert "precision" not in Recipe().to_dict()  # fp32 jobs keep the keys they had
    assert Recipe(precision="bf16").to_dict()["precision"] == "bf16"
    with pytest.raises(InvalidInputError, match="unknown precision 'fp16': expected one of fp32, bf16"):
        rotelab.diagnose("synthetic", precision="fp16", runs_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_bf16_on_the_cpu_says_it_is_meant_for_gpus(tmp_path):
    import rotelab
    from rotelab.errors import RotelabWarning

    with pytest.warns(RotelabWarning, match="precision bf16 on the CPU: .* bf16 is meant for GPUs"):
        r = rotelab.diagnose("synthetic", precision="bf16", device="cpu", epochs=1, seeds=1, runs_dir=tmp_path)
    assert r.final["train_acc"] > 0  # a warning, not a refusal: it still trains
