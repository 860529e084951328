"""``compare``: which technique reduces memorization, measured by (repeated) stratified k-fold.

Every technique cell is one engine job whose K members are the folds (× repeats). All cells
share the same folds and member seeds, so the cells are compared fold by fold (a paired
design) and the difference against ``baseline`` gets a paired test.

With label noise, the noise lives in the training folds only: a validation fold is scored
against the *clean* labels, and the engine's validation set (what early stopping watches)
is the fold's examples whose label was not flipped, a random ~(1 − p) share of the fold.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rotelab.engine.train import Members
from rotelab.executors import run_jobs
from rotelab.measures.folds import HOLDOUT_FRACTION, fold_masks, fold_summary, paired_difference, stratified_folds
from rotelab.measures.noise import clean_accuracy, masked_mean, noisy_labels_memorized
from rotelab.plan import Job
from rotelab.progress import Progress
from rotelab.store import Store, atomic_write_bytes, jsonable
from rotelab.studies.common import (
    Examples, ModelArg, base_recipe, check_training, load_study_data, make_progress, model_source,
    open_study,
    resolve_model, study_id,
)
from rotelab.techniques import check_cell_for_data, defaults_table, parse_cells
from rotelab.validation import check_int

DEFAULT_TECHNIQUES = "baseline,augment,dropout,l1,l2,augment+dropout+l2"
#: Per-fold values every cell gets; "noisy_memorized" is added when label noise was injected.
METRICS = ("val_acc", "train_acc", "test_acc", "acc_gap", "loss_gap", "train_loss", "val_loss")


# ══ shared with sweep: fold masks, per-fold metrics, running groups of jobs ══════════════
@dataclass(frozen=True, eq=False)
class Folds:
    """The same splits for every job of a study: (K, N) masks over all examples.

    ``val`` is the full validation fold (scored on clean labels); ``engine_val`` is what the
    engine validates on (early stopping, curves): the fold without flipped labels.
    """

    train: np.ndarray  # (K, N) bool
    val: np.ndarray  # (K, N) bool
    engine_val: np.ndarray  # (K, N) bool
    seeds: np.ndarray  # (K,)

    def members(self) -> Members:
        return Members(self.seeds, self.train, self.engine_val)


def make_folds(ex: Examples, clean: np.ndarray, noisy: np.ndarray, *, pool_idx: np.ndarray, folds: int,
               repeats: int, seed: int) -> Folds:
    """Stratified (on clean labels) k-fold of the pool examples ``pool_idx``; raises on too few per class."""
    splits = stratified_folds(clean[pool_idx], n_folds=folds, n_repeats=repeats, seed=seed)
    splits = [(pool_idx[tr], pool_idx[va]) for tr, va in splits]
    train, val = fold_masks(splits, len(ex.y))
    flipped = np.zeros(len(ex.y), dtype=bool)
    flipped[: ex.n_pool] = noisy
    return Folds(train, val, val & ~flipped[None, :], np.arange(seed, seed + len(splits)))


def fold_metrics(out: dict[str, np.ndarray], f: Folds, ex: Examples, clean_all: np.ndarray,
                 noisy: bool) -> dict[str, np.ndarray]:
    """Per-member (fold) values, each (K,), from the job's final per-example outputs.

    Training metrics use the labels trained on (flipped ones included); validation accuracy
    uses the clean labels of the whole fold, validation loss the fold's unflipped examples
    (there given = clean; ``loss`` is only recorded against the given label).
    """
    test = np.broadcast_to(ex.test_mask, f.train.shape)
    m = {
        "train_acc": masked_mean(out["correct"], f.train),
        "train_loss": masked_mean(out["loss"], f.train),
        "val_acc": clean_accuracy(out["pred"], clean_all, f.val),
        "val_loss": masked_mean(out["loss"], f.engine_val),
        "test_acc": masked_mean(out["correct"], test),
    }
    m["acc_gap"] = m["train_acc"] - m["val_acc"]
    m["loss_gap"] = m["val_loss"] - m["train_loss"]
    if noisy:
        m["noisy_memorized"] = noisy_labels_memorized(out["pred"], ex.y, clean_all, f.train)
    return m


def summarize(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high), 95% Student-t across folds; NaN when a fold has no value."""
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).all():
        return math.nan, math.nan, math.nan
    s = fold_summary(v)
    return s.mean, s.ci_low, s.ci_high


def write_table(store: Store, name: str, table: pd.DataFrame) -> Path:
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    atomic_write_bytes(store.path / name, buf.getvalue().encode())
    return store.path / name


def write_arrays(store: Store, name: str, **arrays: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(store.path / name, buf.getvalue())
    return store.path / name


# ══ compare ═══════════════════════════════════════════════════════════════════════════════
@dataclass(frozen=True, eq=False)
class CompareResult:
    """The comparison table (one row a technique cell) and the per-fold values behind it.

    ``table`` columns: ``technique``; ``val_acc`` (mean over folds, on clean labels) with
    ``val_acc_ci_low``/``val_acc_ci_high`` (95% Student-t across folds); ``train_acc`` (on
    the labels trained on); ``acc_gap`` = train − validation accuracy; ``loss_gap`` =
    validation − train loss; ``test_acc``; ``train_loss``, ``val_loss``; with label noise
    ``noisy_memorized`` (fraction of flipped training labels reproduced; lower = less
    memorized) with its CI; against ``baseline`` (only when it is a cell):
    ``delta_val_acc`` with CI and ``p_value`` (paired test across folds), and
    ``delta_noisy_memorized``; ``model_epochs`` (epochs trained, summed over members);
    ``best`` (highest mean validation accuracy).
    """

    study_dir: str
    dataset: dict
    model: str
    table: pd.DataFrame
    per_fold: dict[str, dict[str, list[float]]]  # technique -> metric -> (K,) values
    folds: int
    repeats: int
    label_noise: float
    epochs: int
    baseline: str | None
    best: str
    test: str  # the paired test: "corrected_t" (Nadeau & Bengio), for k-fold and repeated 80/20 splits alike
    test_train_ratio: float  # n_test / n_train of one split: 1 / (folds − 1), or 0.25 for folds == 1
    techniques: list[dict]  # label and the recipe settings of each cell
    defaults: list[dict]  # name, default strength and meaning of each technique used
    vectorized: bool
    seconds: float  # training time summed over jobs (as recorded, cached ones included)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "table"}
        d["table"] = self.table.to_dict(orient="records")
        return jsonable(d)


def compare(
    data="digits",
    model: ModelArg = "mlp",
    *,
    techniques: str | Sequence[str] = DEFAULT_TECHNIQUES,
    folds: int = 5,
    repeats: int = 1,
    epochs: int | None = None,
    train_size: int | None = None,
    label_noise: float = 0.0,
    width: int | None = None,
    depth: int | None = None,
    dropout: float = 0.0,
    lr: float = 1e-2,
    batch_size: int = 100,
    optimizer: str = "adam",
    schedule: str = "cosine",
    device: str = "auto",
    seed: int = 0,
    runs_dir: str | Path = "runs",
    progress: bool | Progress = False,
) -> CompareResult:
    """Compare technique cells by stratified k-fold cross-validation of the training pool.

    ``techniques``: comma-separated cells (or a list), each techniques joined by ``+`` with
    optional strengths (``"baseline,l2=0.1,augment+dropout=0.3"``); see
    :func:`rotelab.techniques.defaults_table`. ``folds == 1`` is one stratified 80/20 split
    per repeat. The difference against ``baseline`` is tested with the Nadeau & Bengio (2003)
    corrected resampled t-test (training sets overlap across folds, so the plain paired t is
    too eager; the same holds for repeated 80/20 splits, which is the setting the correction
    was derived for); the delta columns are left out when ``baseline`` is not among the cells,
    which is never added implicitly.

    ``label_noise``: a seeded fraction of the pool's labels is flipped; the flipped labels
    are trained on in the training folds only. Validation accuracy is scored against the
    clean labels of the whole fold; validation loss, and what the engine validates on
    (early stopping), is the fold's unflipped examples. ``noisy_memorized`` is added.

    Every input is validated before anything is written; a rerun of the same call reuses
    every finished job from ``runs_dir``.
    """
    folds = check_int("folds", folds, minimum=1, maximum=1000)
    repeats = check_int("repeats", repeats, minimum=1, maximum=1000)
    cells = parse_cells(techniques)
    ds = load_study_data(data, train_size=train_size, label_noise=label_noise, seed=seed)
    for cell in cells:
        check_cell_for_data(cell, kind=ds.kind)
    choice = resolve_model(model, ds, width=width, depth=depth, dropout=dropout)
    epochs = check_training(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                            schedule=schedule, device=device, family=choice.family)
    base = base_recipe(choice.spec, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                       schedule=schedule)
    recipes = [cell.apply(base, kind=ds.kind) for cell in cells]
    models = model_source(choice, ds)
    for recipe in recipes:  # refuses a dropout cell on the user's own model, before anything is written
        models(recipe)
    ex = Examples.of(ds)
    noisy = ds.noisy_mask
    clean_all = np.concatenate([ds.clean_labels, ds.y_test])
    f = make_folds(ex, clean_all, noisy, pool_idx=np.arange(ds.n_train), folds=folds, repeats=repeats, seed=seed)

    config = {"data": ds.name, "data_fingerprint": ds.fingerprint(), "model_fingerprint": choice.fingerprint,
              "recipe": base.to_dict(), "techniques": [c.label for c in cells],
              "cells": [r.to_dict() for r in recipes], "folds": folds, "repeats": repeats, "seed": seed,
              "train_size": train_size, "label_noise": label_noise}
    sid = study_id("compare", ds.name, choice.spec.name, config)
    store = open_study(runs_dir, sid, kind="compare", config=config, dataset=ds, device=device)
    write_arrays(store, "folds.npz", train_mask=f.train, val_mask=f.val, engine_val_mask=f.engine_val,
                 seeds=f.seeds, noisy=noisy)

    jobs = [Job(label=f"{cell.label} / {f.seeds.size} fold(s)", recipe=recipe, members=f.members(), job_seed=seed)
            for cell, recipe in zip(cells, recipes)]
    results = run_jobs(jobs, store=store, models=models, x=ex.x, y=ex.y, test_mask=ex.test_mask,
                       n_classes=ds.n_classes, kind=ds.kind, data_fingerprint=ds.fingerprint(), device=device,
                       progress=make_progress(progress, "compare"))

    result = _summarize(cells, recipes, results, f, ex, clean_all, noisy=bool(noisy.any()) or label_noise > 0,
                        store_dir=str(store.path), ds=ds, model=choice.spec.name, folds=folds, repeats=repeats,
                        label_noise=label_noise, epochs=epochs)
    write_table(store, "table.csv", result.table)
    store.write_json("result.json", result.to_dict())
    store.close()
    return result


def paired_ratio(folds: int) -> float:
    """n_test / n_train of one split, for the Nadeau & Bengio correction."""
    return 1.0 / (folds - 1) if folds > 1 else HOLDOUT_FRACTION / (1.0 - HOLDOUT_FRACTION)


def _summarize(cells, recipes, results, f: Folds, ex: Examples, clean_all, *, noisy: bool, store_dir: str, ds,
               model: str, folds: int, repeats: int, label_noise: float, epochs: int) -> CompareResult:
    labels = [c.label for c in cells]
    metrics = [fold_metrics(out, f, ex, clean_all, noisy) for out in results]
    base_i = next((i for i, c in enumerate(cells) if not c.parts), None)
    ratio = paired_ratio(folds)
    rows = []
    for label, m, out in zip(labels, metrics, results):
        row: dict[str, Any] = {"technique": label}
        mean, lo, hi = summarize(m["val_acc"])
        row.update(val_acc=mean, val_acc_ci_low=lo, val_acc_ci_high=hi)
        for name in ("train_acc", "acc_gap", "loss_gap", "test_acc", "train_loss", "val_loss"):
            row[name] = summarize(m[name])[0]
        if noisy:
            mean, lo, hi = summarize(m["noisy_memorized"])
            row.update(noisy_memorized=mean, noisy_memorized_ci_low=lo, noisy_memorized_ci_high=hi)
        if base_i is not None:
            row.update(_against(metrics[base_i], m, ratio, noisy))
        row["model_epochs"] = int(np.asarray(out["epochs_run"]).sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    val = table["val_acc"].to_numpy(dtype=float)
    best_i = int(np.nanargmax(val)) if np.isfinite(val).any() else 0
    table["best"] = np.arange(len(table)) == best_i
    used = {n for c in cells for n, _ in c.parts}
    return CompareResult(
        study_dir=store_dir,
        dataset=ds.summary(),
        model=model,
        table=table,
        per_fold={lab: {k: [float(x) for x in v] for k, v in m.items()} for lab, m in zip(labels, metrics)},
        folds=folds,
        repeats=repeats,
        label_noise=float(label_noise),
        epochs=epochs,
        baseline=None if base_i is None else labels[base_i],
        best=labels[best_i],
        test="corrected_t",
        test_train_ratio=ratio,
        techniques=[{"technique": lab, **r.to_dict()} for lab, r in zip(labels, recipes)],
        defaults=[{"name": n, "default": d, "meaning": h} for n, d, h in defaults_table() if n in used],
        vectorized=all(bool(out["vectorized"]) for out in results),
        seconds=float(sum(float(out["seconds"]) for out in results)),
    )


def _against(base: dict[str, np.ndarray], m: dict[str, np.ndarray], ratio: float, noisy: bool) -> dict:
    """Delta columns of one cell against the baseline, fold by fold."""
    row: dict[str, Any] = {}
    a, b = base["val_acc"], m["val_acc"]
    if np.isfinite(a).all() and np.isfinite(b).all():
        d = paired_difference(a, b, test_train_ratio=ratio)
        row.update(delta_val_acc=d.mean_diff, delta_ci_low=d.ci_low, delta_ci_high=d.ci_high, p_value=d.p_value)
    else:
        row.update(delta_val_acc=math.nan, delta_ci_low=math.nan, delta_ci_high=math.nan, p_value=math.nan)
    if noisy:
        diff = m["noisy_memorized"] - base["noisy_memorized"]
        row["delta_noisy_memorized"] = float(diff.mean()) if np.isfinite(diff).all() else math.nan
    return row


__all__ = ["CompareResult", "DEFAULT_TECHNIQUES", "compare"]
