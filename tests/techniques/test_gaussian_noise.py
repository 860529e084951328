"""``gaussian-noise``: a technique added through the batch hook (its file and the list, nothing else)."""

from __future__ import annotations

import numpy as np
import pytest

import rotelab
from rotelab.engine import Recipe
from rotelab.errors import InvalidInputError
from rotelab.techniques import parse_cell


def test_it_parses_and_records_its_strength_only_when_on():
    recipe = parse_cell("gaussian-noise=0.2+l2").apply(Recipe(), kind="vector")
    assert recipe.batch_techniques == (("gaussian-noise", 0.2),) and recipe.l2 == 1.0
    assert parse_cell("gaussian-noise").apply(Recipe(), kind="image").batch_techniques == (("gaussian-noise", 0.1),)
    assert "batch_techniques" not in Recipe().to_dict()  # old job keys stay valid
    with pytest.raises(InvalidInputError, match="gaussian-noise strength must be in"):
        parse_cell("gaussian-noise=0")


def test_noise_on_the_inputs_stops_the_fit_and_is_deterministic(tmp_path):
    kw = dict(folds=2, epochs=30, width=64, label_noise=0.3, runs_dir=tmp_path, device="cpu")
    a = rotelab.compare("synthetic", "mlp", techniques="baseline,gaussian-noise=2", **kw).table.set_index("technique")
    b = rotelab.compare("synthetic", "mlp", techniques="baseline,gaussian-noise=2", seed=0, epochs=30, folds=2,
                        width=64, label_noise=0.3, runs_dir=tmp_path / "again", device="cpu").table
    np.testing.assert_array_equal(a["val_acc"].to_numpy(), b["val_acc"].to_numpy())
    # inputs drowned in noise (σ = 2 on standardized features): far less of the training set is fitted
    assert a.loc["gaussian-noise=2.0", "train_acc"] < a.loc["baseline", "train_acc"] - 0.1
    assert a.loc["gaussian-noise=2.0", "noisy_memorized"] < a.loc["baseline", "noisy_memorized"]
