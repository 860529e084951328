"""The ledger's acceptance line on real models: digits with 10% flipped labels, cells
baseline, augment and dropout trained on the same subsets with the same seeds; at least 80%
of the flipped examples must land in "likely_mislabeled"."""

from __future__ import annotations

import numpy as np
import pytest

from rotelab.data import load_dataset
from rotelab.engine import Members, Recipe, train_job
from rotelab.measures.ledger import example_ledger
from rotelab.models import ModelSpec, build_model
from rotelab.techniques import parse_cell

MODELS = 16  # subset models per cell
TRAIN_SIZE = 600  # digits examples in the pool (60 flipped)
EPOCHS = 100  # the memorization study's mlp default: the baseline fits its flipped labels


def cell_correct(ds, technique: str, mask: np.ndarray) -> np.ndarray:
    """Bool (MODELS, n_pool): each model's correctness on the pool under ``technique``."""
    spec = ModelSpec("mlp").resolved()
    recipe = parse_cell(technique).apply(Recipe(model=spec, epochs=EPOCHS, eval_every=0), kind=ds.kind)
    out = train_job(lambda: build_model(recipe.model, ds.feature_shape, ds.n_classes), ds.x_train, ds.y_train,
                    members=Members(np.arange(MODELS) + 1000, mask, np.zeros_like(mask)),
                    test_mask=np.zeros(ds.n_train, bool), recipe=recipe, n_classes=ds.n_classes, kind=ds.kind,
                    device="cpu", job_seed=7, outputs=("correct",))
    return out["correct"].astype(bool)


@pytest.mark.slow
def test_flipped_labels_are_likely_mislabeled_on_digits():
    ds = load_dataset("digits", train_size=TRAIN_SIZE, label_noise=0.1, seed=0)
    rng = np.random.default_rng(0)
    mask = np.zeros((MODELS, ds.n_train), dtype=bool)
    for m in range(MODELS):
        mask[m, rng.choice(ds.n_train, size=round(0.7 * ds.n_train), replace=False)] = True
    cells = {t: cell_correct(ds, t, mask) for t in ("baseline", "augment", "dropout")}
    led = example_ledger(cells, mask)
    flipped = ds.noisy_mask
    share = (led.category[flipped] == "likely_mislabeled").mean()
    precision = flipped[led.category == "likely_mislabeled"].mean()
    assert share >= 0.8, (share, led.counts())
    assert precision >= 0.5, (precision, led.counts())
