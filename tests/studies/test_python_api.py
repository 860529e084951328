"""The Python API as a user calls it: their arrays, their CSV, their model, their mistakes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from torch import nn

import rotelab
from rotelab.errors import InvalidInputError
from rotelab.progress import Progress, RichProgress
from rotelab.studies.prepare import make_progress

FAST = dict(epochs=2, seeds=1, batch_size=32, device="cpu")


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return rng.normal(size=(120, 6)).astype(np.float32), np.arange(120) % 3


def test_a_module_instance_is_refused_with_the_fix(arrays, tmp_path):
    net = nn.Sequential(nn.Linear(6, 3))
    with pytest.raises(InvalidInputError, match=r"nn.Module instance \(Sequential\).*zero-argument factory"):
        rotelab.diagnose(arrays, net, runs_dir=tmp_path, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_a_model_that_fails_on_a_batch_is_the_users_model_failing(arrays, tmp_path):
    with pytest.raises(InvalidInputError, match=r"your model failed on a batch of \(2, 6\).*RuntimeError: mat1"):
        rotelab.diagnose(arrays, lambda: nn.Sequential(nn.Linear(5, 3)), runs_dir=tmp_path, **FAST)
    with pytest.raises(InvalidInputError, match=r"returned \(2, 4\).*logits of shape \(2, 3\)"):
        rotelab.diagnose(arrays, lambda: nn.Sequential(nn.Linear(6, 4)), runs_dir=tmp_path, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_unknown_keyword_is_a_type_error_and_help_lists_the_options():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'epoch'; did you mean 'epochs'\?"):
        rotelab.compare("synthetic", epoch=3)
    doc = rotelab.compare.__doc__
    assert "folds = 5" in doc and "label_column = None" in doc and "lr = 0.01" in doc


def test_label_column_and_standardize_from_python(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.normal(size=(90, 3)) * [1, 1000, 0.001], columns=["a", "b", "c"])
    df["kind"] = np.where(df["a"] > 0, "pos", "neg")
    path = tmp_path / "table.csv"
    df.to_csv(path, index=False)
    on = rotelab.diagnose(str(path), "mlp", label_column="kind", runs_dir=tmp_path / "runs", **FAST)
    assert on.dataset["classes"] == ["neg", "pos"]
    with pytest.warns(rotelab.errors.DataWarning, match="not standardized"):
        off = rotelab.diagnose(str(path), "mlp", label_column="kind", standardize=False, runs_dir=tmp_path / "runs",
                               **FAST)
    assert on.study_dir != off.study_dir  # standardization is part of the recipe
    with pytest.raises(InvalidInputError, match="label_column applies to dataset files"):
        rotelab.diagnose("synthetic", "mlp", label_column="kind", runs_dir=tmp_path / "runs", **FAST)


def test_progress_is_on_in_an_interactive_session(monkeypatch):
    import sys

    assert type(make_progress(None, "t")) is Progress  # pytest: not interactive
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    assert isinstance(make_progress(None, "t"), RichProgress)
    assert type(make_progress(False, "t")) is Progress


def test_top_keeps_its_meaning_positionally(arrays, tmp_path):
    m = rotelab.memorization(arrays, "mlp", models=24, epochs=2, batch_size=32, runs_dir=tmp_path, device="cpu")
    assert len(m.top(5)) == 5 and list(m.top(5)["id"]) == list(m.top(n=5, cell="baseline")["id"])


@pytest.mark.parametrize("kind", ["diagnose", "compare", "sweep", "memorization", "adapt"])
def test_help_of_every_study_says_what_data_and_model_take(kind):
    """help(rotelab.compare) used to leave `data` unexplained (only diagnose said it)."""
    from rotelab.data.builtin import BUILTIN
    from rotelab.models import MODELS

    doc = getattr(rotelab, kind).__doc__
    assert "``data``:" in doc and "``model``:" in doc and "zero-argument factory" in doc
    assert all(f"``{name}``" in doc for name in (*BUILTIN, *MODELS))
