"""What every study shares: resolving data and model, example arrays, the study directory."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from rotelab.context import run_context
from rotelab.data import Dataset, load_dataset
from rotelab.engine.recipe import OPTIMIZERS, SCHEDULES, Recipe
from rotelab.engine.train import resolve_device
from rotelab.errors import InvalidInputError
from rotelab.models import MODELS, ModelSpec, build_model, check_model_spec
from rotelab.progress import Progress, RichProgress
from rotelab.store import Store
from rotelab.validation import check_choice, check_float, check_int

ModelArg = str | Callable[[], nn.Module]

#: Epochs by model family when the user gives none: enough for each to fit its training data,
#: also in the small-data regime (300 examples are only 3 steps an epoch at batch 100).
DEFAULT_EPOCHS = {"mlp": 100, "cnn": 40, "cnn1d": 60, "custom": 50}
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True, eq=False)
class Examples:
    """All examples a study looks at: the training pool (first ``n_pool``), then the test split."""

    x: np.ndarray  # (N, *feature_shape)
    y: np.ndarray  # (N,) labels as given
    test_mask: np.ndarray  # (N,) bool
    n_pool: int

    @classmethod
    def of(cls, ds: Dataset) -> "Examples":
        x = np.concatenate([ds.x_train, ds.x_test])
        y = np.concatenate([ds.y_train, ds.y_test])
        test = np.zeros(len(y), dtype=bool)
        test[ds.n_train :] = True
        return cls(x, y, test, ds.n_train)

    def pool_mask(self, idx: np.ndarray) -> np.ndarray:
        """Bool (N,) that is True at the given pool indices."""
        m = np.zeros(len(self.y), dtype=bool)
        m[idx] = True
        return m


@dataclass(frozen=True, eq=False)
class ModelChoice:
    spec: ModelSpec
    factory: Callable[[], nn.Module]
    fingerprint: str
    family: str


def resolve_model(
    model: ModelArg, ds: Dataset, *, width: int | None, depth: int | None, dropout: float
) -> ModelChoice:
    """A built-in family name or the user's zero-argument ``nn.Module`` factory."""
    if callable(model):
        probe = model()
        if not isinstance(probe, nn.Module):
            raise InvalidInputError(f"model factory must return an nn.Module, got {type(probe).__name__}")
        try:
            src = inspect.getsource(type(probe))
        except (OSError, TypeError):
            src = ""
        shapes = sorted((k, tuple(v.shape)) for k, v in probe.state_dict().items())
        fp = hashlib.sha256(f"{type(probe).__qualname__}|{src}|{shapes}|{probe}".encode()).hexdigest()[:16]
        name = f"custom:{type(probe).__name__}"
        return ModelChoice(ModelSpec(name=name, dropout=0.0), model, fp, "custom")
    if not isinstance(model, str):
        raise InvalidInputError(f"model must be one of {', '.join(MODELS)} or an nn.Module factory, got {model!r}")
    spec = check_model_spec(ModelSpec(model, width, depth, dropout), ds.feature_shape, ds.n_classes)
    shape, c = ds.feature_shape, ds.n_classes
    return ModelChoice(spec, lambda: build_model(spec, shape, c), f"builtin:{spec}", spec.name)


ModelSource = Callable[[Recipe], tuple[Callable[[], nn.Module], str]]


def model_source(choice: ModelChoice, ds: Dataset) -> ModelSource:
    """recipe -> (factory, fingerprint) of the model it trains: the user's factory, or the
    built-in spec the recipe names (a technique such as dropout changes the spec)."""
    shape, c = ds.feature_shape, ds.n_classes

    def source(recipe: Recipe):
        if recipe.model == choice.spec:
            return choice.factory, choice.fingerprint
        if choice.family == "custom":
            raise InvalidInputError(
                f"a technique changes the model (dropout {recipe.model.dropout}) but the model is your own "
                "nn.Module factory; build nn.Dropout into your module and leave that technique out"
            )
        spec = recipe.model
        return (lambda: build_model(spec, shape, c)), f"builtin:{spec}"

    return source


def check_training(*, epochs: int | None, batch_size: int, lr: float, optimizer: str, schedule: str,
                   device: str, family: str) -> int:
    """Validate the optimizer settings; return the epochs to train."""
    if epochs is None:
        epochs = DEFAULT_EPOCHS[family]
    epochs = check_int("epochs", epochs, minimum=1, maximum=100_000)
    check_int("batch size", batch_size, minimum=1)
    check_float("learning rate", lr, low=0.0, low_open=True)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("schedule", schedule, SCHEDULES)
    check_choice("device", str(device), DEVICES)
    if str(device) == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InvalidInputError("device 'cuda' was asked for but no CUDA GPU is available; use --device auto or cpu")
    return epochs


def base_recipe(spec: ModelSpec, *, epochs: int, batch_size: int, lr: float, optimizer: str,
                schedule: str, **techniques: Any) -> Recipe:
    return Recipe(model=spec, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                  schedule=schedule, **techniques)


def load_study_data(data, *, train_size, label_noise, seed, file_options=None) -> Dataset:
    check_int("seed", seed, minimum=0)
    if label_noise:
        check_float("label noise", label_noise, low=0.0, high=1.0, high_open=True)
    return load_dataset(data, train_size=train_size, label_noise=label_noise, seed=seed, **(file_options or {}))


def resolve_data(data, *, label_column: str | None = None) -> Dataset:
    """The CLI's ``--data`` with its file options, as a Dataset the study functions take as is."""
    if label_column is None:
        return load_dataset(data)
    from rotelab.data.files import load_file

    return load_file(data, label_column=label_column)


def study_id(kind: str, data_name: str, model_name: str, config: dict) -> str:
    """Readable and content-addressed: the same command lands in the same directory."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{kind}-{data_name}-{model_name}")[:80]
    return f"{slug}-{digest}"


def open_study(runs_dir: str | Path, sid: str, *, kind: str, config: dict, dataset: Dataset, device: str) -> Store:
    """Create (or reopen, to resume) ``runs_dir/sid`` once every input has been validated."""
    path = Path(runs_dir) / sid
    return Store.create(path, {
        "kind": kind, "id": sid, "config": config, "dataset": dataset.summary(),
        "context": run_context(str(resolve_device(device)), kind),
    })


def make_progress(progress: bool | Progress, title: str) -> Progress:
    if isinstance(progress, Progress):
        return progress
    return RichProgress(title) if progress else Progress()
