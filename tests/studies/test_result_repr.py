"""print(result) is one line a person reads: data, model, the finding and where the study lies
(the dataclass's own repr printed every curve and table, thousands of characters)."""

from __future__ import annotations

import numpy as np
import pytest

import rotelab


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (60, 6)), rng.normal(1.2, 1, (60, 6))]).astype(np.float32)
    return x, np.repeat([0, 1], 60)


def _one_line(r) -> str:
    text = repr(r)
    assert "\n" not in text and len(text) < 400 and text == str(r)
    assert text.startswith(type(r).__name__ + "(arrays, mlp: ") and text.endswith(f"; {r.study_dir})")
    return text


def test_diagnose_repr_says_the_verdict_and_accuracies(tmp_path, arrays):
    r = rotelab.diagnose(arrays, "mlp", epochs=3, seeds=1, runs_dir=tmp_path)
    text = _one_line(r)
    assert r.verdict in text and f"train {100 * r.final['train_acc']:.1f}%" in text


def test_compare_repr_says_the_best_cell_and_whether_it_is_significant(tmp_path, arrays):
    r = rotelab.compare(arrays, "mlp", techniques="baseline,l2", folds=3, epochs=3, runs_dir=tmp_path)
    text = _one_line(r)
    assert "2 cells by 3-fold" in text and f"best {r.best} (" in text
    assert ("recommended" in text) == (r.recommended is not None)


def test_memorization_repr_says_the_mean_score(tmp_path, arrays):
    r = rotelab.memorization(arrays, "mlp", models=24, epochs=3, runs_dir=tmp_path)
    text = _one_line(r)
    assert f"baseline {r.summaries['baseline']['mean_score']:.3f}" in text and "24 models on 70% subsets" in text
