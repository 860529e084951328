"""Models that learned nothing still produce scores and flag labels: memorization says they are
near chance instead of letting 953 'likely wrong' labels stand (a user trial's lr 1e-6 run)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import rotelab
from rotelab.errors import RotelabWarning
from rotelab.studies.memorization import near_chance


def test_the_rule_compares_with_guessing_the_most_common_class():
    y = np.array([0] * 60 + [1] * 40)
    s = {"a": {"accuracy": {"held_out": 0.65}}, "b": {"accuracy": {"held_out": 0.75}}}
    lines = near_chance(s, y)
    assert len(lines) == 1 and lines[0].startswith("a: the models are near chance") and "gives 60.0%" in lines[0]
    assert s["a"]["near_chance"] and not s["b"]["near_chance"]


def test_untrained_models_are_named_near_chance(tmp_path):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        m = rotelab.memorization("digits", "mlp", models=24, epochs=2, lr=1e-6, train_size=300, runs_dir=tmp_path)
    assert m.summaries["baseline"]["near_chance"]
    assert any(issubclass(w.category, RotelabWarning) and "near chance" in str(w.message) for w in seen)
    trained = rotelab.memorization("digits", "mlp", models=24, epochs=10, train_size=300, runs_dir=tmp_path)
    assert not trained.summaries["baseline"]["near_chance"]


def test_compare_warns_when_every_technique_is_near_chance(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 6)).astype(np.float32), np.arange(120) % 4  # labels unrelated to the inputs
    with pytest.warns(RotelabWarning, match=r"every technique's models are near chance on the held-out folds \(the "
                                            r"best \d+\.\d%; always guessing the most common class gives 25\.0%\)"):
        rotelab.compare((x, y), "mlp", techniques="baseline,dropout", folds=2, epochs=2, runs_dir=tmp_path)


def test_scores_two_halves_of_the_models_disagree_on_are_called_unstable():
    from rotelab.studies.memorization import unstable

    summaries = {"baseline": {"split_half_correlation": 0.11, "near_chance": False},
                 "dropout": {"split_half_correlation": 0.8, "near_chance": False},
                 "l2": {"split_half_correlation": 0.05, "near_chance": True}}  # near chance says more already
    lines = unstable(summaries)
    assert len(lines) == 1 and lines[0].startswith("baseline: the scores are unstable (split-half correlation 0.11")
