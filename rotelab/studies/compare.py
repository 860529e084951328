"""``compare``: which technique reduces memorization, measured by (repeated) stratified k-fold.

Every technique cell is one engine job whose K members are the folds (× repeats). All cells
share the same folds and member seeds, so the cells are compared fold by fold (a paired
design) and the difference against ``baseline`` gets a paired test.

With label noise, the noise lives in the training folds only: a validation fold is scored
against the *clean* labels, and the engine's validation set (what early stopping watches)
is the fold's examples whose label was not flipped, a random ~(1 − p) share of the fold.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rotelab.errors import RotelabWarning
from rotelab.executors import make_executor, run_jobs
from rotelab.measures.folds import holm_adjusted, paired_difference
from rotelab.options import DEFAULT_DATA, DEFAULT_MODEL, split_options
from rotelab.plan import Examples, Folds, Job, make_folds
from rotelab.progress import Progress
from rotelab.studies.cv import NEAR_CHANCE_POINTS, fold_metrics, majority_rate, mean_ci, paired_ratio
from rotelab.studies.prepare import (
    ModelArg, make_progress, open_study, prepare, result_json, short_repr, study_function, write_arrays,
    write_table,
)
from rotelab.studies.compare_verdict import SIGNIFICANCE
from rotelab.techniques import check_cell_for_data, defaults_table, parse_cells
from rotelab.validation import check_int


# ══ compare ═══════════════════════════════════════════════════════════════════════════════


@dataclass(frozen=True, eq=False)
class CompareResult:
    """The comparison table (one row a technique cell) and the per-fold values behind it.

    ``table`` columns: ``technique``; ``val_acc`` (mean over folds, on clean labels) with
    ``val_acc_ci_low``/``val_acc_ci_high`` (95% Student-t across folds, Nadeau–Bengio corrected); ``train_acc`` (on
    the labels trained on); ``acc_gap`` = train − validation accuracy; ``loss_gap`` =
    validation − train loss; ``test_acc``; ``train_loss``, ``val_loss``; with label noise
    ``noisy_memorized`` (fraction of flipped training labels reproduced; lower = less
    memorized) with its CI; against ``baseline`` (only when it is a cell):
    ``delta_val_acc`` with CI and ``p_value`` (paired test across folds), ``p_holm`` (the
    same p adjusted by Holm's method for testing every cell against the baseline), and
    ``delta_noisy_memorized``; ``model_epochs`` (epochs trained, summed over members);
    ``best`` (highest mean validation accuracy; a tie goes to the smaller p) and
    ``recommended`` (the row of the field below: the ★ of the terminal). ``recommended``
    is the cell of the highest mean among those that beat ``baseline`` at p_holm <
    ``SIGNIFICANCE`` (the best cell when there is no baseline to test against); otherwise
    None: no technique made a significant difference.
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
    recommended: str | None  # the best cell of those significantly better than baseline (Holm), else None
    test: str  # the paired test: "corrected_t" (Nadeau & Bengio), for k-fold and repeated 80/20 splits alike
    test_train_ratio: float  # n_test / n_train of one split: 1 / (folds − 1), or 0.25 for folds == 1
    techniques: list[dict]  # label and the recipe settings of each cell
    defaults: list[dict]  # name, default strength and meaning of each technique used
    vectorized: bool
    seconds: float  # training time summed over jobs (as recorded, cached ones included)

    def __repr__(self) -> str:
        best = self.table.set_index("technique").loc[self.best, "val_acc"]
        verdict = (f"recommended {self.recommended}" if self.recommended
                   else "no technique significantly better than baseline")
        design = (f"{self.folds}-fold" if self.folds > 1 else "80/20 split") + (
            f" x {self.repeats}" if self.repeats > 1 else "")
        return short_repr(self, f"{len(self.table)} cells by {design}", f"best {self.best} ({100 * best:.1f}%)", verdict)

    def to_dict(self) -> dict:
        return result_json(self, "table")


@study_function("compare")
def compare(data: Any = DEFAULT_DATA, model: ModelArg = DEFAULT_MODEL, *,
            progress: bool | Progress | None = None, **options: Any) -> CompareResult:
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
    own, opts = split_options("compare", options)
    folds = check_int("folds", own.folds, minimum=1, maximum=1000)
    repeats = check_int("repeats", own.repeats, minimum=1, maximum=1000)
    cells = parse_cells(own.techniques)
    p = prepare("compare", data, model, opts)
    for cell in cells:
        check_cell_for_data(cell, kind=p.ds.kind)
    recipes = [cell.apply(p.recipe, kind=p.ds.kind) for cell in cells]
    refs = [p.model.ref(r, p.ds) for r in recipes]  # refuses a dropout cell on the user's own model
    ex = p.examples
    f = make_folds(ex, pool_idx=np.arange(ex.n_pool), folds=folds, repeats=repeats, seed=opts.seed)
    config = {"data": p.ds.name, "data_fingerprint": ex.fingerprint, "model_fingerprint": p.model.fingerprint,
              "recipe": p.recipe.to_dict(), "techniques": [c.label for c in cells],
              "cells": [r.to_dict() for r in recipes], "folds": folds, "repeats": repeats, "seed": opts.seed,
              "train_size": opts.train_size, "label_noise": opts.label_noise}
    jobs = [Job(label=f"{cell.label} / {f.seeds.size} fold(s)", recipe=recipe, members=f.members(),
                job_seed=opts.seed, model=ref) for cell, recipe, ref in zip(cells, recipes, refs)]
    with open_study(p, config, own) as store:
        write_arrays(store, "folds.npz", train_mask=f.train, val_mask=f.val, engine_val_mask=f.engine_val,
                     seeds=f.seeds, noisy=ex.flipped[: ex.n_pool])
        results = run_jobs(jobs, ex, store=store, progress=make_progress(progress, "compare"),
                           device=opts.device, threads=opts.threads, executor=make_executor(opts))
        result = _summarize(cells, recipes, results, f, ex, noisy=bool(ex.flipped.any()) or opts.label_noise > 0,
                            store_dir=str(store.path), ds=p.ds, model=p.model.spec.name, folds=folds,
                            repeats=repeats, label_noise=opts.label_noise, epochs=p.recipe.epochs)
        write_table(store, "table.csv", result.table)
        store.write_json("result.json", result.to_dict())
    majority, best = majority_rate(p.ds.y_train), float(result.table["val_acc"].max())
    if best < majority + NEAR_CHANCE_POINTS:
        warnings.warn(f"every technique's models are near chance on the held-out folds (the best {best:.1%}; always "
                      f"guessing the most common class gives {majority:.1%}), so the comparison says little; train "
                      "longer (--epochs), with another learning rate (--lr) or a bigger model", RotelabWarning,
                      stacklevel=3)
    return result


def _summarize(cells, recipes, results, f: Folds, ex: Examples, *, noisy: bool, store_dir: str, ds,
               model: str, folds: int, repeats: int, label_noise: float, epochs: int) -> CompareResult:
    labels = [c.label for c in cells]
    metrics = [fold_metrics(out, f, ex, noisy) for out in results]
    base_i = next((i for i, c in enumerate(cells) if not c.parts), None)
    ratio = paired_ratio(folds)
    rows = []
    for label, m, out in zip(labels, metrics, results):
        row: dict[str, Any] = {"technique": label}
        mean, lo, hi = mean_ci(m["val_acc"], ratio)
        row.update(val_acc=mean, val_acc_ci_low=lo, val_acc_ci_high=hi)
        for name in ("train_acc", "acc_gap", "loss_gap", "test_acc", "train_loss", "val_loss"):
            row[name] = mean_ci(m[name])[0]
        if noisy:
            mean, lo, hi = mean_ci(m["noisy_memorized"], ratio)
            row.update(noisy_memorized=mean, noisy_memorized_ci_low=lo, noisy_memorized_ci_high=hi)
        if base_i is not None:
            row.update(_against(metrics[base_i], m, ratio, noisy))
        row["model_epochs"] = int(np.asarray(out["epochs_run"]).sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    if base_i is not None:  # every cell against the one baseline: one family of tests
        table.loc[base_i, "p_value"] = np.nan  # the baseline is not tested against itself (Δ = 0 by definition)
        tested = np.arange(len(table)) != base_i
        table["p_holm"] = np.where(tested, 0.0, np.nan)
        table.loc[tested, "p_holm"] = holm_adjusted(table.loc[tested, "p_value"].to_numpy(dtype=float))
    best_i = _best(table)
    table["best"] = np.arange(len(table)) == best_i  # the highest mean, significant or not
    recommended = _recommended(table, best_i, base_i)
    table["recommended"] = table["technique"] == recommended  # beats the baseline after Holm (★)
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
        recommended=recommended,
        test="corrected_t",
        test_train_ratio=ratio,
        techniques=[{"technique": lab, **r.to_dict()} for lab, r in zip(labels, recipes)],
        defaults=[{"name": n, "default": d, "meaning": h} for n, d, h in defaults_table() if n in used],
        vectorized=all(bool(out["vectorized"]) for out in results),
        seconds=float(sum(float(out["seconds"]) for out in results)),
    )


def _best(table: pd.DataFrame, among: np.ndarray | None = None) -> int:
    """The row (of ``among``, a bool mask; default all) of the highest mean validation accuracy;
    a tie goes to the smaller p-value, then to the earlier cell, so the order of ``techniques``
    decides nothing that the data decides."""
    val = table["val_acc"].to_numpy(dtype=float)
    p = table["p_value"].to_numpy(dtype=float) if "p_value" in table else np.full(len(table), np.nan)
    rows = np.flatnonzero(np.ones(len(table), bool) if among is None else among)
    # means of equal counts can differ in the last bit (sums in another order): 1e-9 is a tie
    # an untested row (the baseline, a single split) counts as p = 1: no evidence either way
    keys = [(-round(val[i], 9) if val[i] == val[i] else math.inf, p[i] if p[i] == p[i] else 1.0, i) for i in rows]
    return min(keys)[2] if keys else 0


def _recommended(table: pd.DataFrame, best_i: int, base_i: int | None) -> str | None:
    """With a baseline: the cell of the highest mean among those that beat it significantly
    after Holm's adjustment for testing every cell (``p_holm`` < SIGNIFICANCE, better mean), or
    None. Without one: the best cell."""
    if base_i is None:
        return table.iloc[best_i]["technique"]
    ok = ((table["p_holm"] < SIGNIFICANCE) & (table["delta_val_acc"] > 0)).to_numpy()
    return table.iloc[_best(table, ok)]["technique"] if ok.any() else None


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


__all__ = ["CompareResult", "compare"]
