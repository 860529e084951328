"""``memorization``: which examples are memorized, and how well an attacker finds members.

Trains ``models`` subset models (Feldman & Zhang 2020): member m trains on a random
fraction ``subset`` of the training pool, drawn from a generator seeded by ``(seed, m)``
alone, so the first 256 members of a 512-model study are the members of the 256-model
study and their jobs are reused. From the same models:

- per-example memorization scores with standard errors, and their split-half stability;
- the influence of every training example on every test example, and the top pairs;
- membership inference with every model the target in turn: the loss-threshold attack
  (Yeom et al. 2018) and LiRA online and offline (Carlini et al. 2022), with ROC AUC,
  TPR at 0.1% / 1% FPR, the ROC curve and each example's vulnerability.

With ``techniques`` the same models (same subsets, same seeds) are trained once per
technique cell, so the cells differ only by the technique.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rotelab.engine.train import OUTPUTS
from rotelab.errors import InvalidInputError
from rotelab.executors import make_executor, run_jobs
from rotelab.measures.membership import (
    AttackROC, attack_roc, example_vulnerability, lira_fixed_variance, lira_scores, loss_attack_scores,
)
from rotelab.measures.memorization import (
    influence_scores, memorization_scores, split_half_correlation, top_influence_pairs,
)
from rotelab.options import DEFAULT_DATA, DEFAULT_MODEL, MEMORIZATION_EPOCHS, split_options
from rotelab.plan import (
    SEED_STRIDE, Job, check_coverage, chunked, subset_masks, subset_members, subset_size,
)
from rotelab.progress import Progress
from rotelab.store import RESULT_FILE, atomic_write_bytes, jsonable
from rotelab.studies.prepare import ModelArg, Prepared, make_progress, open_study, prepare, study_function, study_id
from rotelab.techniques import Cell, check_cell_for_data, parse_cells
from rotelab.validation import check_float, check_int

#: Attacks reported, in table order; ``HEADLINE_ATTACK`` is the LiRA variant quoted first.
ATTACKS = ("loss", "lira_online", "lira_offline")
HEADLINE_ATTACK = "lira_online"
#: Influence pairs kept in ``influence_<cell>.csv``.
TOP_PAIRS = 100
#: Most memorized examples and top influence pairs whose inputs are saved for the report.
GALLERY = 32
GALLERY_PAIRS = 12
#: ROC points stored per attack (log-spaced in FPR).
ROC_POINTS = 200
#: Score histogram shown in tables: left edges of the bins (the last bin is closed at 1).
SCORE_BINS = (-1.0, 0.0, 0.1, 0.25, 0.5, 0.75)
QUANTILES = {"min": 0.0, "p10": 0.1, "p25": 0.25, "median": 0.5, "p75": 0.75, "p90": 0.9, "p99": 0.99, "max": 1.0}
_SPLIT_STREAM = 0x5A1F


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
    (n_train,), ``influence`` (n_train, n_test) float32 — the ``.npz`` export.
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

    def to_dict(self) -> dict:
        """JSON-ready (NaN as None): the summaries and file names, no per-example arrays."""
        return jsonable({
            "study_dir": self.study_dir, "dataset": self.dataset, "model": self.model, "models": self.models,
            "subset": self.subset, "epochs": self.epochs, "cells": list(self.cells),
            "summaries": self.summaries, "files": self.files, "jobs_trained": self.jobs_trained,
            "jobs_reused": self.jobs_reused, "seconds": self.seconds, "config": self.config,
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
    t0 = time.perf_counter()
    own, opts = split_options("memorization", options)
    models = check_int("models", own.models, minimum=1, maximum=1_000_000)
    subset = check_float("subset", own.subset, low=0.0, high=1.0, low_open=True, high_open=True)
    chunk = check_int("chunk", own.chunk, minimum=1)
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
    jobs = _jobs(p, labels, recipes, pool_mask, models=models, chunk=chunk)
    with open_study(p, config, own, sid=study_id("memorization", p.ds.name, p.model.spec.name, ident)) as store:
        outs = run_jobs(jobs, p.examples, store=store, progress=make_progress(progress, "memorization"),
                        device=opts.device, threads=opts.threads, executor=make_executor(opts))
        per_cell = len(chunked(models, chunk))
        parts = _measure_cells(p, labels, outs, pool_mask, per_cell, store.path)
        result = MemorizationResult(
            study_dir=str(store.path), dataset=p.ds.summary(), model=p.model.spec.name, models=models,
            subset=subset, epochs=p.recipe.epochs, cells=labels, jobs_trained=outs.trained,
            jobs_reused=outs.reused, seconds=float(time.perf_counter() - t0), config=config, **parts)
        store.write_json(RESULT_FILE, result.to_dict())
    return result


def _jobs(p: Prepared, labels: list[str], recipes: list, pool_mask: np.ndarray, *, models: int,
          chunk: int) -> list[Job]:
    """A job per chunk of models per cell; the same subsets and seeds in every cell."""
    seed, jobs = p.options.seed, []
    refs = [p.model.ref(r, p.ds) for r in recipes]  # refuses a dropout cell on the user's own model
    for cell_label, recipe, ref in zip(labels, recipes, refs):
        for r in chunked(models, chunk):
            jobs.append(Job(label=f"{cell_label} / models {r.start}-{r.stop - 1}", recipe=recipe,
                            members=subset_members(pool_mask[r.start : r.stop], r, len(p.examples.y), seed=seed),
                            job_seed=seed * SEED_STRIDE + r.start, model=ref))
    return jobs


def _measure_cells(p: Prepared, labels: list[str], outs: list[dict], pool_mask: np.ndarray, per_cell: int,
                   path: Path) -> dict[str, dict]:
    """Each cell's measures, its files written; the result's per-cell fields."""
    parts: dict[str, dict] = {"summaries": {}, "files": {}, "scores": {}, "influence_pairs": {}, "rocs": {},
                              "arrays": {}}
    for i, (cell_label, slug) in enumerate(zip(labels, _cell_slugs(labels))):
        out = {k: np.concatenate([o[k] for o in outs[i * per_cell : (i + 1) * per_cell]]) for k in OUTPUTS}
        m = _measure(out, pool_mask, p.ds, seed=p.options.seed)
        parts["summaries"][cell_label] = m.summary
        parts["scores"][cell_label], parts["influence_pairs"][cell_label] = m.scores, m.pairs
        parts["rocs"][cell_label], parts["arrays"][cell_label] = m.roc, m.arrays
        parts["files"][cell_label] = _write_cell(path, slug, m, p.ds)
    return parts


def _cell_slugs(labels: list[str]) -> list[str]:
    """File-name-safe cell names (``dropout=0.5`` -> ``dropout-0.5``), unique."""
    slugs: list[str] = []
    for label in labels:
        s = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "cell"
        while s in slugs:
            s += "_"
        slugs.append(s)
    return slugs


# ── measures ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, eq=False)
class _CellMeasures:
    summary: dict
    scores: pd.DataFrame
    pairs: pd.DataFrame
    roc: pd.DataFrame
    arrays: dict[str, np.ndarray]


def _finite(a: np.ndarray) -> np.ndarray:
    """Margins/losses of a saturated model can overflow float32; keep them large but finite."""
    a = np.asarray(a, dtype=np.float64)
    return a if np.isfinite(a).all() else np.nan_to_num(a, nan=0.0, posinf=1e6, neginf=-1e6)


def _majority_out(pred: np.ndarray, out_mask: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_pool,) most frequent prediction among the models that did not train on the example."""
    counts = np.stack([((pred == c) & out_mask).sum(axis=0) for c in range(n_classes)])
    return np.where(out_mask.any(axis=0), counts.argmax(axis=0), -1)


def _roc_dict(roc: AttackROC, attack: str, tm: np.ndarray) -> dict:
    d = {"auc": roc.auc, "tpr_at_0_1pct": roc.tpr_at_0_1pct, "tpr_at_1pct": roc.tpr_at_1pct,
         "n_members": roc.n_members, "n_nonmembers": roc.n_nonmembers}
    if attack.startswith("lira_"):  # as lira_scores decided it: one pooled variance, or one per example
        d["fixed_variance"] = lira_fixed_variance(tm, variant=attack.removeprefix("lira_"))
    return d


def _auc_or_none(labels: np.ndarray, values: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    keep = np.isfinite(values)
    y = labels[keep]
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, values[keep]))


def _measure(out: dict[str, np.ndarray], pool_mask: np.ndarray, ds, *, seed: int) -> _CellMeasures:
    """Scores, influence, attacks and their tables for one cell's models."""
    p, tm = ds.n_train, pool_mask
    correct = out["correct"].astype(bool)
    est = memorization_scores(correct[:, :p], tm)
    try:
        split = split_half_correlation(correct[:, :p], tm, rng=np.random.default_rng([seed, _SPLIT_STREAM]))
    except InvalidInputError:  # fewer than 4 models, or halves without in and out models
        split = float("nan")
    influence = influence_scores(correct[:, p:], tm).astype(np.float32)
    rocs, vulnerability = _attacks(out["margin"][:, :p], tm)
    predicted = _majority_out(out["pred"][:, :p], ~tm, ds.n_classes)
    scores = pd.DataFrame({
        "id": ds.train_ids, "pool_index": np.arange(p), "given_label": ds.y_train, "clean_label": ds.clean_labels,
        "predicted_label": predicted, "score": est.score, "stderr": est.stderr, "n_in": est.n_in,
        "n_out": est.n_out, "p_in": est.p_in, "p_out": est.p_out, "vulnerability": vulnerability,
        "flipped": ds.noisy_mask,
    })
    pairs = _pairs(ds, influence, est.score)
    roc_df = pd.concat([pd.DataFrame(dict(zip(("attack", "fpr", "tpr"), (name, *roc.downsampled(ROC_POINTS)))))
                        for name, roc in rocs.items()], ignore_index=True)
    summary = _summary(ds, tm, correct, est, scores, rocs, split=split)
    arrays = {"trainset_mask": tm.copy(), "memorization": est.score, "influence": influence,
              "memorization_stderr": est.stderr, "tr_labels": ds.y_train, "tt_labels": ds.y_test,
              "flipped": ds.noisy_mask}
    return _CellMeasures(summary, scores, pairs, roc_df, arrays)


def _pairs(ds, influence: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    """The top influence pairs with both examples' ids (``train_id``, ``test_id``) and positions."""
    top = pd.DataFrame(top_influence_pairs(influence, k=TOP_PAIRS), columns=["train_pool_index", "test_index",
                                                                            "influence"])
    tr, te = top["train_pool_index"].to_numpy(), top["test_index"].to_numpy()
    return pd.DataFrame({"train_id": ds.ids_of(tr), "test_id": ds.ids_of(te, split="test"),
                         "influence": top["influence"], "train_label": ds.y_train[tr], "test_label": ds.y_test[te],
                         "train_score": score[tr], "train_pool_index": tr, "test_index": te})


def _attacks(margin: np.ndarray, tm: np.ndarray) -> tuple[dict[str, AttackROC], np.ndarray]:
    """Membership inference over the training pool, each model the target and the others its
    shadows: the ROC of each attack and each example's vulnerability."""
    margin = _finite(margin)
    # the loss from the margin, -log p_y = log(1 + e^-margin), in float64: the engine's float32
    # loss rounds to exactly 0 for confident predictions, and those ties would hide the loss
    # attack's low-FPR end behind one threshold
    loss = np.logaddexp(0.0, -margin)
    attack_scores = {
        "loss": loss_attack_scores(loss),
        "lira_online": lira_scores(margin, tm, variant="online"),
        "lira_offline": lira_scores(margin, tm, variant="offline"),
    }
    rocs = {name: attack_roc(attack_scores[name], tm) for name in ATTACKS}
    vulnerability = example_vulnerability(attack_scores[HEADLINE_ATTACK], tm, fpr=0.01)
    return rocs, vulnerability


def _summary(ds, tm: np.ndarray, correct: np.ndarray, est, scores: pd.DataFrame, rocs: dict, *,
             split: float) -> dict:
    """The cell's plain numbers (``MemorizationResult.summaries``)."""
    p, flipped, vulnerability = ds.n_train, ds.noisy_mask, scores["vulnerability"].to_numpy()
    s = est.score[np.isfinite(est.score)]
    edges = np.asarray(SCORE_BINS)
    hist = np.bincount(np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(edges) - 1),
                       minlength=len(edges))
    has_noise = bool(flipped.any())
    top10 = scores.sort_values(["score", "stderr", "pool_index"], ascending=[False, True, True]).head(10)
    return {
        "n_models": len(tm), "n_train": int(p), "n_test": int(ds.n_test), "mean_score": float(s.mean()),
        "quantiles": {k: float(np.quantile(s, q)) for k, q in QUANTILES.items()},
        "share_above_0_5": float((s > 0.5).mean()),
        "histogram": {"edges": list(SCORE_BINS) + [1.0], "counts": hist.tolist()},
        "mean_stderr": float(np.nanmean(est.stderr)), "split_half_correlation": float(split),
        "attacks": {name: _roc_dict(r, name, tm) for name, r in rocs.items()}, "headline_attack": HEADLINE_ATTACK,
        "mean_vulnerability": float(np.nanmean(vulnerability)),
        "n_flipped": int(flipped.sum()),
        "flipped_auc_score": _auc_or_none(flipped, est.score) if has_noise else None,
        "flipped_auc_vulnerability": _auc_or_none(flipped, vulnerability) if has_noise else None,
        "accuracy": {
            "train": float(correct[:, :p][tm].mean()),
            "held_out": float(correct[:, :p][~tm].mean()),
            "test": float(correct[:, p:].mean()) if ds.n_test else float("nan"),
        },
        "top_memorized": [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in top10[["id", "pool_index", "given_label", "clean_label", "predicted_label", "score",
                              "stderr", "flipped"]].to_dict("records")
        ],
    }


# ── files ─────────────────────────────────────────────────────────────────────────────


def _examples(m: _CellMeasures, ds) -> dict[str, np.ndarray]:
    """Features of the most memorized examples and of the top influence pairs, for the report."""
    top = m.scores.sort_values(["score", "stderr", "pool_index"], ascending=[False, True, True])["pool_index"]
    top = top.to_numpy()[:GALLERY]
    pairs = m.pairs.head(GALLERY_PAIRS)
    return {"top_index": top, "top_id": ds.ids_of(top), "top_x": ds.x_train[top],
            "pair_train_x": ds.x_train[pairs["train_pool_index"].to_numpy()],
            "pair_test_x": ds.x_test[pairs["test_index"].to_numpy()]}


def _write_cell(path: Path, slug: str, m: _CellMeasures, ds) -> dict[str, str]:
    """scores_<cell>.csv/.parquet, influence_<cell>.csv, roc_<cell>.csv, feldman_zhang_<cell>.npz,
    examples_<cell>.npz (the inputs the report draws)."""
    names = {
        "scores_csv": f"scores_{slug}.csv", "scores_parquet": f"scores_{slug}.parquet",
        "influence": f"influence_{slug}.csv", "roc": f"roc_{slug}.csv", "npz": f"feldman_zhang_{slug}.npz",
        "examples": f"examples_{slug}.npz",
    }
    atomic_write_bytes(path / names["scores_csv"], m.scores.to_csv(index=False).encode())
    buf = io.BytesIO()
    m.scores.to_parquet(buf, index=False)
    atomic_write_bytes(path / names["scores_parquet"], buf.getvalue())
    atomic_write_bytes(path / names["influence"], m.pairs.to_csv(index=False).encode())
    atomic_write_bytes(path / names["roc"], m.roc.to_csv(index=False).encode())
    buf = io.BytesIO()
    np.savez_compressed(buf, **m.arrays)
    atomic_write_bytes(path / names["npz"], buf.getvalue())
    buf = io.BytesIO()
    np.savez_compressed(buf, **_examples(m, ds))
    atomic_write_bytes(path / names["examples"], buf.getvalue())
    return names

