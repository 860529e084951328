"""``memorization``: which examples are memorized, and how well an attacker finds members.

Trains ``models`` subset models (Feldman & Zhang 2020): member m trains on a random
fraction ``subset`` of the training pool, drawn from a generator seeded by ``(seed, m)``
alone, so the first 256 members of a 512-model study are the members of the 256-model
study and their jobs are reused. From the same models:

- per-example memorization scores with standard errors, and their split-half stability;
- the influence of every training example on every test example, and the top pairs;
- membership inference with every model the target in turn: the loss-threshold attack
  (Yeom et al. 2018), LiRA online and offline (Carlini et al. 2022) and RMIA online and
  offline (Zarifzadeh et al. 2024), with ROC AUC, TPR at 0.1% / 1% FPR, the ROC curve and
  each example's vulnerability; with ``reference_models`` N, each target gets only N
  reference models (what an auditor with few models finds);
- label issues: a yes/no flag per training label with a suggested label and a confidence,
  from the out models' probabilities (``rotelab.measures.label_issues``).

With ``techniques`` the same models (same subsets, same seeds) are trained once per
technique cell, so the cells differ only by the technique, and a per-example ledger says
which examples each technique stops memorizing (``ledger.csv``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rotelab.engine.train import OUTPUTS
from rotelab.errors import RotelabWarning
from rotelab.executors import make_executor, run_jobs
from rotelab.measures.memorization import UNSTABLE_BELOW
from rotelab.options import DEFAULT_DATA, DEFAULT_MODEL, MEMORIZATION_EPOCHS, split_options
from rotelab.plan import SEED_STRIDE, Job, check_coverage, chunked, subset_masks, subset_members, subset_size
from rotelab.progress import Progress
from rotelab.store import RESULT_FILE, jsonable
from rotelab.studies.cv import NEAR_CHANCE_POINTS, majority_rate
from rotelab.studies.memorization_cells import measure_cell, write_cell
from rotelab.studies.memorization_ledger import ledger_table
from rotelab.studies.prepare import (
    ModelArg, Prepared, make_progress, open_study, prepare, short_repr, study_function, study_id, write_arrays,
    write_table,
)
from rotelab.techniques import Cell, check_cell_for_data, parse_cells
from rotelab.validation import check_float, check_int

#: What every memorization job records: the engine's outputs and every class's probability
#: (float16), which the label-issue flag reads from the models that left an example out.
JOB_OUTPUTS = (*OUTPUTS, "probs")


@dataclass(frozen=True, eq=False)
class MemorizationResult:
    """What ``memorization`` measured, one entry per technique cell (``cells`` in order).

    ``summaries[cell]``: plain numbers (score quantiles, mean, share above 0.5, split-half
    correlation, attack figures, flipped-label AUCs, accuracies), also in ``to_dict()``.
    ``scores[cell]``: DataFrame, one row per training example (``id``: the example's id in the
    user's source, see ``dataset["ids"]``; ``pool_index``: its row in the arrays; given/clean/predicted
    label, score, stderr, n_in, n_out, p_in, p_out, vulnerability, flipped).
    ``influence_pairs[cell]``: DataFrame of the top (train, test) influence pairs.
    ``rocs[cell]``: DataFrame (attack, fpr, tpr), ``ROC_POINTS`` per attack.
    ``arrays[cell]``: ``trainset_mask`` (n_models, n_train) bool, ``memorization``
    (n_train,), ``influence`` (n_train, n_test) float32 — the ``.npz`` export. ``seconds``: the
    training time of its jobs as stored (a rerun that trains nothing keeps it), as in every study.
    """

    study_dir: str
    dataset: dict
    model: str
    models: int
    subset: float
    epochs: int
    cells: list[str]
    summaries: dict[str, dict]
    files: dict[str, dict[str, str]]
    jobs_trained: int
    jobs_reused: int
    seconds: float
    config: dict = field(default_factory=dict)
    scores: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    influence_pairs: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    rocs: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    ledger: dict = field(default_factory=dict)  # with several cells: counts by category, by technique
    ledger_table: pd.DataFrame | None = field(default=None, repr=False)  # one row per example (ledger.csv)

    def __repr__(self) -> str:
        means = ", ".join(f"{c} {self.summaries[c]['mean_score']:.3f}" for c in self.cells)
        return short_repr(self, f"{self.models} models on {100 * self.subset:.0f}% subsets",
                          f"mean memorization score {means}")

    def to_dict(self) -> dict:
        """JSON-ready (NaN as None): the summaries and file names, no per-example arrays."""
        return jsonable({
            "study_dir": self.study_dir, "dataset": self.dataset, "model": self.model, "models": self.models,
            "subset": self.subset, "epochs": self.epochs, "cells": list(self.cells),
            "summaries": self.summaries, "files": self.files, "jobs_trained": self.jobs_trained,
            "jobs_reused": self.jobs_reused, "seconds": self.seconds, "config": self.config, "ledger": self.ledger,
        })

    def top(self, n: int = 10, cell: str | None = None) -> pd.DataFrame:
        """The ``n`` most memorized training examples of ``cell`` (default: the first), with
        their ids in the user's source (``id``)."""
        df = self.scores[cell or self.cells[0]]
        return df.sort_values(["score", "stderr", "pool_index"], ascending=[False, True, True]).head(n)


@study_function("memorization")
def memorization(data: Any = DEFAULT_DATA, model: ModelArg = DEFAULT_MODEL, *,
                 progress: bool | Progress | None = None, **options: Any) -> MemorizationResult:
    """Per-example memorization scores, influence and membership inference from subset models.

    ``models`` models are trained, each on ``round(subset * n_train)`` training examples drawn
    at random (seeded by ``seed`` and the model's index), ``chunk`` models per stored job;
    rerunning resumes, and a larger ``models`` trains only the new chunks. ``techniques``
    (e.g. ``"baseline,dropout,l2"``) repeats the study per technique cell with the same
    subsets and seeds. Every training example must be both in and out of some model's
    subset; too few models is an :class:`~rotelab.errors.InvalidInputError` naming how many
    are needed. Higher scores = more memorized; higher attack TPR = more leakage.
    """
    own, opts = split_options("memorization", options)
    models = check_int("models", own.models, minimum=1, maximum=1_000_000)
    subset = check_float("subset", own.subset, low=0.0, high=1.0, low_open=True, high_open=True)
    chunk = check_int("chunk", own.chunk, minimum=1)
    if own.reference_models is not None:
        check_int("reference models", own.reference_models, minimum=1, maximum=models - 1)
    p = prepare("memorization", data, model, opts, epochs_table=MEMORIZATION_EPOCHS)
    cells = parse_cells(own.techniques) if own.techniques is not None else [Cell(())]
    for cell in cells:
        check_cell_for_data(cell, kind=p.ds.kind)
    n_sub = subset_size(subset, p.ds.n_train)
    pool_mask = subset_masks(models, n_pool=p.ds.n_train, n_subset=n_sub, seed=opts.seed)
    check_coverage(pool_mask, n_subset=n_sub, seed=opts.seed)
    # eval_every=0: the engine evaluates once at the end (early stopping still validates each epoch)
    recipes = [cell.apply(replace(p.recipe, eval_every=0), kind=p.ds.kind) for cell in cells]
    labels = [cell.label for cell in cells]
    # the study directory does not depend on `models` or `chunk`: more models land in the same
    # directory and reuse the stored chunks
    ident = {"data": p.ds.name, "data_fingerprint": p.examples.fingerprint,
             "recipes": [r.to_dict() for r in recipes], "subset": subset, "seed": opts.seed,
             "train_size": opts.train_size, "label_noise": opts.label_noise, "model_fingerprint": p.model.fingerprint}
    config = {**ident, "models": models, "chunk": chunk, "cells": labels}
    if own.reference_models is not None:  # the attacks only: the same jobs
        config["reference_models"] = own.reference_models
    jobs = _jobs(p, labels, recipes, pool_mask, models=models, chunk=chunk)
    with open_study(p, config, own, sid=study_id("memorization", p.ds.name, p.model.spec.name, ident)) as store:
        outs = run_jobs(jobs, p.examples, store=store, progress=make_progress(progress, "memorization"),
                        device=opts.device, threads=opts.threads, executor=make_executor(opts))
        per_cell = len(chunked(models, chunk))
        parts = _measure_cells(p, labels, outs, pool_mask, per_cell, store.path, own.reference_models)
        for line in near_chance(parts["summaries"], p.ds.y_train) + unstable(parts["summaries"]):
            warnings.warn(line, RotelabWarning, stacklevel=3)
        if parts.get("ledger_table") is not None:
            write_table(store, "ledger.csv", parts["ledger_table"])
            write_arrays(store, "ledger_examples.npz", compressed=True, **_ledger_examples(parts["ledger_table"], p))
        result = MemorizationResult(
            study_dir=str(store.path), dataset=p.ds.summary(), model=p.model.spec.name, models=models,
            subset=subset, epochs=p.recipe.epochs, cells=labels, jobs_trained=outs.trained,
            jobs_reused=outs.reused, seconds=float(sum(float(o["seconds"]) for o in outs)), config=config, **parts)
        store.write_json(RESULT_FILE, result.to_dict())
    return result


def near_chance(summaries: dict[str, dict], y_train: np.ndarray) -> list[str]:
    """A line per cell whose models barely beat guessing on the examples they did not train on:
    scores, label issues and attacks from models that learned nothing are noise, however many
    labels they flag. Marks the cell's summary (``near_chance``) for the JSON and the report."""
    majority = majority_rate(y_train)
    lines = []
    for cell, s in summaries.items():
        acc = s["accuracy"]["held_out"]
        s["near_chance"] = bool(acc < majority + NEAR_CHANCE_POINTS)
        if s["near_chance"]:
            lines.append(f"{cell}: the models are near chance on the examples they did not train on ({acc:.1%}; "
                         f"always guessing the most common class gives {majority:.1%}), so their memorization "
                         "scores, label issues and attacks say little; train longer (--epochs), with another "
                         "learning rate (--lr) or a bigger model")
    return lines


def unstable(summaries: dict[str, dict]) -> list[str]:
    """A line per cell (not near chance: that says more) whose scores two halves of its models do
    not agree on: its top examples and influence pairs are then mostly the noise of few models."""
    return [f"{cell}: the scores are unstable (split-half correlation {s['split_half_correlation']:.2f}, below "
            f"{UNSTABLE_BELOW}): two halves of the models rank the examples differently, so the top examples and "
            "influence pairs are mostly noise; train more models (--models)"
            for cell, s in summaries.items()
            if not s.get("near_chance") and s["split_half_correlation"] < UNSTABLE_BELOW]


def _jobs(p: Prepared, labels: list[str], recipes: list, pool_mask: np.ndarray, *, models: int,
          chunk: int) -> list[Job]:
    """A job per chunk of models per cell; the same subsets and seeds in every cell."""
    seed, jobs = p.options.seed, []
    refs = [p.model.ref(r, p.ds) for r in recipes]  # refuses a dropout cell on the user's own model
    for cell_label, recipe, ref in zip(labels, recipes, refs):
        for r in chunked(models, chunk):
            jobs.append(Job(label=f"{cell_label} / models {r.start}-{r.stop - 1}", recipe=recipe,
                            members=subset_members(pool_mask[r.start : r.stop], r, len(p.examples.y), seed=seed),
                            job_seed=seed * SEED_STRIDE + r.start, model=ref, outputs=JOB_OUTPUTS))
    return jobs


def _measure_cells(p: Prepared, labels: list[str], outs: list[dict], pool_mask: np.ndarray, per_cell: int,
                   path: Path, reference_models: int | None) -> dict[str, Any]:
    """Each cell's measures, its files written; with several cells, the ledger across them."""
    parts: dict[str, Any] = {"summaries": {}, "files": {}, "scores": {}, "influence_pairs": {}, "rocs": {},
                             "arrays": {}}
    slugs, correct, vulnerability = _cell_slugs(labels), {}, {}
    for i, (cell_label, slug) in enumerate(zip(labels, slugs)):
        out = {k: np.concatenate([o[k] for o in outs[i * per_cell : (i + 1) * per_cell]]) for k in JOB_OUTPUTS}
        m = measure_cell(out, pool_mask, p.ds, seed=p.options.seed, reference_models=reference_models)
        parts["summaries"][cell_label] = m.summary
        parts["scores"][cell_label], parts["influence_pairs"][cell_label] = m.scores, m.pairs
        parts["rocs"][cell_label], parts["arrays"][cell_label] = m.roc, m.arrays
        parts["files"][cell_label] = write_cell(path, slug, m, p.ds)
        correct[cell_label] = out["correct"][:, : p.ds.n_train].astype(bool)
        vulnerability[cell_label] = m.scores["vulnerability"].to_numpy()
    if len(labels) > 1:
        table, summary = ledger_table(labels, slugs, correct, pool_mask, vulnerability, p.ds)
        parts.update(ledger={**summary, "file": "ledger.csv"}, ledger_table=table)
    return parts


def _ledger_examples(table: pd.DataFrame, p: Prepared, per_category: int = 8) -> dict[str, np.ndarray]:
    """For the report: a few examples of each ledger category (the baseline's highest scores)."""
    base = next(c for c in table.columns if c.startswith("score_"))
    arrays = {}
    for category, rows in table.sort_values(base, ascending=False).groupby("category", sort=False):
        idx = rows["pool_index"].to_numpy()[:per_category]
        arrays[f"{category}_index"], arrays[f"{category}_x"] = idx, p.ds.x_train[idx]
    return arrays


def _cell_slugs(labels: list[str]) -> list[str]:
    """File-name-safe cell names (``dropout=0.5`` -> ``dropout-0.5``), unique."""
    slugs: list[str] = []
    for label in labels:
        s = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "cell"
        while s in slugs:
            s += "_"
        slugs.append(s)
    return slugs

