"""The skeleton every study shares: ``prepare`` (data, model, recipe, examples), then
``with open_study(...) as store:``; each study keeps only its plan and its measures.

``study_function`` turns a study's Python function into the public one: its keyword
options are those of ``rotelab.options`` (so ``help(rotelab.compare)`` lists them all, with
their defaults), checked by name before anything runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import functools
import hashlib
import inspect
import io
import json
import re
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from rotelab.context import run_context
from rotelab.data import Dataset, feature_warnings, load_dataset
from rotelab.engine.memory import budget_from_env
from rotelab.engine.recipe import OPTIMIZERS, PRECISIONS, SCHEDULES, Recipe
from rotelab.engine.train import resolve_device
from rotelab.errors import DataWarning, InvalidInputError, RotelabWarning
from rotelab.executors.choose import check_executor_options
from rotelab.models import MODELS, ModelSpec, build_model, check_model_spec
from rotelab.options import DEFAULT_EPOCHS, TrainingOptions, help_of, option_fields
from rotelab.plan import Examples, ModelRef
from rotelab.progress import Progress, RichProgress
from rotelab.store import Store, atomic_write_bytes, jsonable
from rotelab.study_file import study_file_text
from rotelab.validation import check_choice, check_float, check_int

ModelArg = str | Callable[[], nn.Module]
DEVICES = ("auto", "cpu", "cuda")


# ══ the model ══════════════════════════════════════════════════════════════════════════
@dataclass(frozen=True, eq=False)
class ModelChoice:
    """A built-in family with its settings, or the user's own factory."""

    spec: ModelSpec
    factory: Callable[[], nn.Module]
    fingerprint: str
    family: str  # "mlp", "cnn", "cnn1d" or "custom"

    def ref(self, recipe: Recipe, ds: Dataset) -> ModelRef:
        """The model ``recipe`` trains: this one, or the built-in spec a technique changed
        (dropout sets the model's dropout); refused for the user's own factory."""
        if recipe.model == self.spec:
            return ModelRef(self.factory, self.fingerprint)
        if self.family == "custom":
            raise InvalidInputError(
                f"a technique changes the model (dropout {recipe.model.dropout}) but the model is your own "
                "nn.Module factory; build nn.Dropout into your module and leave that technique out")
        spec, shape, c = recipe.model, ds.feature_shape, ds.n_classes
        return ModelRef(lambda: build_model(spec, shape, c), f"builtin:{spec}")


def resolve_model(model: ModelArg, ds: Dataset, *, width: int | None, depth: int | None,
                  dropout: float) -> ModelChoice:
    """A built-in family name or the user's zero-argument ``nn.Module`` factory, checked on
    two examples of ``ds`` before anything is trained."""
    if isinstance(model, nn.Module):
        raise InvalidInputError(
            f"model is an nn.Module instance ({type(model).__name__}); rotelab trains many fresh copies, so "
            f"pass a zero-argument factory instead, e.g. model=lambda: {type(model).__name__}(...) or the class "
            "itself")
    if callable(model):
        return _custom_model(model, ds)
    if not isinstance(model, str):
        raise InvalidInputError(f"model must be one of {', '.join(MODELS)} or an nn.Module factory, got {model!r}")
    spec = check_model_spec(ModelSpec(model, width, depth, dropout), ds.feature_shape, ds.n_classes)
    shape, c = ds.feature_shape, ds.n_classes
    return ModelChoice(spec, lambda: build_model(spec, shape, c), f"builtin:{spec}", spec.name)


def _custom_model(factory: Callable[[], nn.Module], ds: Dataset) -> ModelChoice:
    try:
        probe = factory()
    except Exception as exc:  # noqa: BLE001 — the user's code: report it, do not crash
        raise InvalidInputError(f"your model factory failed when called with no arguments "
                                f"({type(exc).__name__}: {exc}); it must build a fresh nn.Module") from None
    if not isinstance(probe, nn.Module):
        raise InvalidInputError(f"model factory must return an nn.Module, got {type(probe).__name__}")
    _check_on_batch(probe, ds)
    try:
        src = inspect.getsource(type(probe))
    except (OSError, TypeError):
        src = ""
    shapes = sorted((k, tuple(v.shape)) for k, v in probe.state_dict().items())
    fp = hashlib.sha256(f"{type(probe).__qualname__}|{src}|{shapes}|{probe}".encode()).hexdigest()[:16]
    return ModelChoice(ModelSpec(name=f"custom:{type(probe).__name__}", dropout=0.0), factory, fp, "custom")


def _check_on_batch(module: nn.Module, ds: Dataset) -> None:
    """The user's model on two examples, alone, as they wrote it: a shape bug is theirs to
    see first, before any talk of vectorization."""
    import torch

    x = torch.as_tensor(ds.x_train[:2])
    try:
        with torch.no_grad():
            out = module.eval()(x)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise InvalidInputError(
            f"your model failed on a batch of {tuple(x.shape)} (2 examples of the data's feature shape "
            f"{ds.feature_shape}): {type(exc).__name__}: {first}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), ds.n_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidInputError(
            f"your model returned {got} for a batch of {tuple(x.shape)}; it must return logits of shape "
            f"({len(x)}, {ds.n_classes}), one per class")


# ══ prepare ════════════════════════════════════════════════════════════════════════════
@dataclass(frozen=True, eq=False)
class Prepared:
    """What a study works on, every input checked: nothing has been written yet."""

    kind: str
    data_arg: Any  # as the caller gave it (for the study file)
    model_arg: Any
    ds: Dataset
    examples: Examples
    model: ModelChoice
    recipe: Recipe  # the base recipe; technique cells change it
    options: TrainingOptions  # epochs and standardize resolved


def prepare(kind: str, data: Any, model: ModelArg, opts: TrainingOptions, *,
            epochs_table: dict[str, int] = DEFAULT_EPOCHS, subset_data: bool = True) -> Prepared:
    """Load and check the data, resolve the model and the recipe. ``subset_data=False`` keeps
    the whole pool (sweep takes its own subsets and reads ``train_size`` as its default size)."""
    check_int("seed", opts.seed, minimum=0)
    if opts.label_noise:
        check_float("label noise", opts.label_noise, low=0.0, high=1.0, high_open=True)
    file_options = {"label_column": opts.label_column} if opts.label_column is not None else {}
    ds = load_dataset(data, train_size=opts.train_size if subset_data else None, label_noise=opts.label_noise,
                      seed=opts.seed, **file_options)
    choice = resolve_model(model, ds, width=opts.width, depth=opts.depth, dropout=opts.dropout)
    epochs = check_training(opts, family=choice.family, epochs_table=epochs_table)
    standardize = ds.kind == "vector" if opts.standardize is None else bool(opts.standardize)
    for line in feature_warnings(ds, standardize=standardize):
        warnings.warn(line, DataWarning, stacklevel=4)  # at the caller of rotelab.diagnose() etc.
    if opts.precision == "bf16" and opts.executor == "local" and resolve_device(opts.device).type == "cpu":
        warnings.warn("precision bf16 on the CPU: the forward pass is rounded to bfloat16 as on a GPU, which most "
                      "CPUs run slower than fp32; bf16 is meant for GPUs", RotelabWarning, stacklevel=4)
    recipe = Recipe(model=choice.spec, epochs=epochs, batch_size=opts.batch_size, lr=opts.lr,
                    optimizer=opts.optimizer, schedule=opts.schedule, standardize=standardize,
                    precision=opts.precision)
    return Prepared(kind, data, model, ds, Examples.of(ds), choice, recipe,
                    replace(opts, epochs=epochs, standardize=standardize))


def check_training(opts: TrainingOptions, *, family: str, epochs_table: dict[str, int]) -> int:
    """Validate the optimizer and run settings; return the epochs to train."""
    epochs = epochs_table[family] if opts.epochs is None else opts.epochs
    epochs = check_int("epochs", epochs, minimum=1, maximum=100_000)
    check_int("batch size", opts.batch_size, minimum=1)
    check_float("learning rate", opts.lr, low=0.0, low_open=True)
    check_choice("optimizer", opts.optimizer, OPTIMIZERS)
    check_choice("schedule", opts.schedule, SCHEDULES)
    check_choice("precision", opts.precision, PRECISIONS)
    check_choice("device", str(opts.device), DEVICES)
    if opts.threads is not None:
        check_int("threads", opts.threads, minimum=1, maximum=4096)
    if opts.standardize is not None and not isinstance(opts.standardize, (bool, np.bool_)):
        raise InvalidInputError(f"standardize must be true, false or unset, got {opts.standardize!r}")
    check_executor_options(opts)
    budget_from_env()  # a malformed ROTELAB_MEMORY_BUDGET: one line now, not a study folder without results
    if str(opts.device) == "cuda" and opts.executor == "local":  # on Ray, the workers' GPUs count
        import torch

        if not torch.cuda.is_available():
            raise InvalidInputError("device 'cuda' was asked for but no CUDA GPU is available; use --device auto or cpu")
    return epochs


# ══ the study directory ════════════════════════════════════════════════════════════════
def study_id(kind: str, data_name: str, model_name: str, config: dict) -> str:
    """Readable and content-addressed: the same command lands in the same directory."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{kind}-{data_name}-{model_name}")[:80]
    return f"{slug}-{digest}"


#: set by :func:`check_only`: a study stops at ``open_study``, every input checked, nothing written
_CHECK_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("rotelab_check_only", default=False)


class _Checked(Exception):
    """A study called under :func:`check_only` reached the point where it would write."""


def check_only(run: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call the study function ``run`` up to the point where it would create its folder: every
    input is checked (an error is raised as the study would raise it), nothing is trained or
    written, no warning is shown (the real run shows them). ``rotelab run`` checks every study
    of a file this way before the first one trains."""
    token = _CHECK_ONLY.set(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(*args, **kwargs)
    except _Checked:
        pass
    finally:
        _CHECK_ONLY.reset(token)


@contextlib.contextmanager
def open_study(p: Prepared, config: dict, own_options: Any, *, sid: str | None = None) -> Iterator[Store]:
    """Create (or reopen, to resume) the study's directory once every input has been
    checked; write its ``study.json`` and the ``study.toml`` that reruns it. A new study that
    fails (not Ctrl-C) before it has stored a job is removed, with a runs folder made for it."""
    if _CHECK_ONLY.get():
        raise _Checked
    sid = sid or study_id(p.kind, p.ds.name, p.model.spec.name, config)
    runs, path = Path(p.options.runs_dir), Path(p.options.runs_dir) / sid
    created = [d for d in (runs, path) if not d.exists()]  # made by this call, so this call may remove them
    store = Store.create(path, {
        "kind": p.kind, "id": sid, "config": config, "dataset": p.ds.summary(),
        "context": {**run_context(str(resolve_device(p.options.device)), p.kind), "threads_option": p.options.threads,
                    "executor": p.options.executor},
    })
    try:
        values = {**asdict(own_options), **asdict(p.options)}
        atomic_write_bytes(store.path / "study.toml",
                           study_file_text(p.kind, p.data_arg, p.model_arg, values).encode())
        yield store
    except Exception:
        if created and _untouched(store):  # it failed before a job was stored: leave no empty study behind
            store.close()
            shutil.rmtree(path, ignore_errors=True)
            if runs in created:
                with contextlib.suppress(OSError):
                    runs.rmdir()  # only while empty
        raise
    finally:
        store.close()


def _untouched(store: Store) -> bool:
    """No job stored and no other driver at work on it (an index that cannot be read: keep the
    folder for the error to point at)."""
    try:
        return store.untouched()
    except Exception:  # noqa: BLE001
        return False


def make_progress(progress: bool | Progress | None, title: str) -> Progress:
    """A progress bar on stderr, or silence. ``None``: on in an interactive session (a
    terminal, the Python prompt, IPython/Jupyter), off otherwise."""
    if isinstance(progress, Progress):
        return progress
    if progress is None:
        progress = _interactive()
    return RichProgress(title) if progress else Progress()


def _interactive() -> bool:
    if hasattr(sys, "ps1") or sys.flags.interactive or "IPython" in sys.modules:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def short_repr(result: Any, *facts: str) -> str:
    """``Name(data, model: fact; fact; study_dir)``: what ``print(result)`` shows, one line a
    person reads (the full fields are in ``to_dict()``)."""
    head = f"{result.dataset.get('name', '?')}, {result.model}"
    return f"{type(result).__name__}({head}: {'; '.join(f for f in facts if f)}; {result.study_dir})"


def result_json(result: Any, *tables: str) -> dict:
    """A study result (a dataclass) as JSON-ready data: its DataFrame fields ``tables`` as lists
    of records (None stays None), NaN as null."""
    from dataclasses import fields, is_dataclass

    d = {}
    for f in fields(result):
        if f.name not in tables:
            value = getattr(result, f.name)
            d[f.name] = asdict(value) if is_dataclass(value) else value
    for name in tables:
        t = getattr(result, name)
        d[name] = None if t is None else t.to_dict(orient="records")
    return jsonable(d)


def write_table(store: Store, name: str, table: pd.DataFrame) -> Path:
    """A DataFrame as CSV in the study directory, atomically."""
    atomic_write_bytes(store.path / name, table.to_csv(index=False).encode())
    return store.path / name


def write_arrays(store: Store, name: str, *, compressed: bool = False, **arrays: np.ndarray) -> Path:
    """Arrays as one .npz in the study directory, atomically."""
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    atomic_write_bytes(store.path / name, buf.getvalue())
    return store.path / name


# ══ the public functions ═══════════════════════════════════════════════════════════════
def study_function(kind: str) -> Callable[[Callable], Callable]:
    """Give ``fn(data, model, *, <its own>, **options)`` the full keyword signature of the
    options of ``kind`` (for ``help()`` and editors), and refuse unknown names."""
    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
        taken = {p.name for p in own}
        extra = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
                 for f in option_fields(kind) if f.name not in taken]
        allowed = taken | {p.name for p in extra}

        @functools.wraps(fn)
        def public(*args: Any, **kwargs: Any) -> Any:
            unknown = sorted(set(kwargs) - allowed)
            if unknown:
                near = difflib.get_close_matches(unknown[0], allowed, n=1)
                raise TypeError(f"{fn.__name__}() got an unexpected keyword argument {unknown[0]!r}"
                                + (f"; did you mean {near[0]!r}?" if near else ""))
            return fn(*args, **kwargs)

        public.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
        public.__doc__ = (fn.__doc__ or "").rstrip() + "\n" + _DATA_DOC + _options_doc(kind)
        return public

    return decorate


#: What every study takes as ``data`` and ``model``, said once for all their docstrings.
_DATA_DOC = """
    ``data``: a built-in name (``digits``, ``mnist1d``, ``synthetic``), a path (``.npz``, a CSV
    with a label column, an image folder with a folder per class, IDX or CIFAR files), arrays or
    tensors ``(x, y)`` or ``(x, y, x_test, y_test)``, a torch ``Dataset`` of ``(x, y)`` pairs, or a
    :class:`~rotelab.data.Dataset`. Every per-example output keeps an id into it (see
    ``result.dataset["ids"]``). ``model``: a built-in family (``mlp``, ``cnn``, ``cnn1d``,
    ``resnet``) or a zero-argument factory returning a fresh ``nn.Module``. ``progress``: a bar
    on stderr (default: in an interactive session).
"""


def _options_doc(kind: str) -> str:
    lines = ["", "", "    Options (keyword-only; ``rotelab.options`` holds their defaults):"]
    for f in option_fields(kind):
        lines.append(f"        {f.name} = {f.default!r}: {help_of(kind, f)}")
    return "\n".join(lines) + "\n"


__all__ = ["ModelArg", "ModelChoice", "Prepared", "check_training", "make_progress", "open_study", "prepare",
           "resolve_model", "result_json", "study_function", "study_id", "write_arrays", "write_table"]
