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

import numpy as np
import pandas as pd

from rotelab.engine.train import OUTPUTS, Members
from rotelab.errors import InvalidInputError
from rotelab.executors import run_jobs
from rotelab.measures.membership import (
    FIXED_VARIANCE_BELOW, AttackROC, attack_roc, example_vulnerability, lira_scores, loss_attack_scores,
)
from rotelab.measures.memorization import (
    influence_scores, memorization_scores, split_half_correlation, top_influence_pairs,
)
from rotelab.plan import Job, chunked
from rotelab.progress import Progress
from rotelab.store import RESULT_FILE, atomic_write_bytes, jsonable
from rotelab.studies.common import (
    Examples, ModelArg, base_recipe, check_training, load_study_data, make_progress, model_source,
    open_study,
    resolve_model, study_id,
)
from rotelab.techniques import Cell, check_cell_for_data, parse_cells
from rotelab.validation import check_float, check_int

#: Epochs by model family when the user gives none. Longer than the plain-training defaults:
#: the scores need models that fit their subset, mislabeled examples included, and those are
#: fitted last (on digits with 10% flipped labels an MLP fits ~10% of its flipped examples
#: after 30 epochs and ~90% after 100).
DEFAULT_EPOCHS = {"mlp": 100, "cnn": 40, "cnn1d": 100, "custom": 50}
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
_SEED_STRIDE = 100_003  # member m of study seed s gets seed s * stride + m
_SUBSET_STREAM = 0x5B5E7  # keeps the subset draws apart from other seeded streams
_SPLIT_STREAM = 0x5A1F
_MAX_MODELS_SEARCH = 100_000


@dataclass(frozen=True, eq=False)
class MemorizationResult:
    """What ``memorization`` measured, one entry per technique cell (``cells`` in order).

    ``summaries[cell]``: plain numbers (score quantiles, mean, share above 0.5, split-half
    correlation, attack figures, flipped-label AUCs, accuracies), also in ``to_dict()``.
    ``scores[cell]``: DataFrame, one row per training example (index, given/clean/predicted
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

    def top(self, cell: str | None = None, n: int = 10) -> pd.DataFrame:
        """The ``n`` most memorized training examples of ``cell`` (default: the first)."""
        df = self.scores[cell or self.cells[0]]
        return df.sort_values(["score", "stderr", "index"], ascending=[False, True, True]).head(n)


def memorization(
    data="mnist1d",
    model: ModelArg = "mlp",
    *,
    models: int = 256,
    subset: float = 0.7,
    techniques: str | list[str] | None = None,
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
    chunk: int = 64,
    progress: bool | Progress = False,
) -> MemorizationResult:
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
    models = check_int("models", models, minimum=1, maximum=1_000_000)
    subset = check_float("subset", subset, low=0.0, high=1.0, low_open=True, high_open=True)
    chunk = check_int("chunk", chunk, minimum=1)
    ds = load_study_data(data, train_size=train_size, label_noise=label_noise, seed=seed)
    choice = resolve_model(model, ds, width=width, depth=depth, dropout=dropout)
    if epochs is None:
        epochs = DEFAULT_EPOCHS[choice.family]
    epochs = check_training(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                            schedule=schedule, device=device, family=choice.family)
    cells = parse_cells(techniques) if techniques is not None else [Cell(())]
    for cell in cells:
        check_cell_for_data(cell, kind=ds.kind)
    n_pool = ds.n_train
    n_sub = _subset_size(subset, n_pool)
    pool_mask = subset_masks(models, n_pool=n_pool, n_subset=n_sub, seed=seed)
    _check_coverage(pool_mask, n_pool=n_pool, n_subset=n_sub, seed=seed)

    # eval_every=0: the engine evaluates once at the end (early stopping still validates each epoch)
    base = replace(base_recipe(choice.spec, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                               schedule=schedule), eval_every=0)
    recipes = [cell.apply(base, kind=ds.kind) for cell in cells]
    labels = [cell.label for cell in cells]
    slugs = _cell_slugs(labels)
    ex = Examples.of(ds)
    # the study directory does not depend on `models` or `chunk`: more models land in the same
    # directory and reuse the stored chunks
    ident = {"data": ds.name, "data_fingerprint": ds.fingerprint(), "recipes": [r.to_dict() for r in recipes],
             "subset": subset, "seed": seed, "train_size": train_size, "label_noise": label_noise,
             "model_fingerprint": choice.fingerprint}
    config = {**ident, "models": models, "chunk": chunk, "cells": labels}
    sid = study_id("memorization", ds.name, choice.spec.name, ident)

    jobs: list[Job] = []
    for cell_label, recipe in zip(labels, recipes):
        for r in chunked(models, chunk):
            jobs.append(Job(label=f"{cell_label} / models {r.start}-{r.stop - 1}", recipe=recipe,
                            members=_members(pool_mask[r.start : r.stop], r, ex, seed=seed),
                            job_seed=seed * _SEED_STRIDE + r.start))

    models_of = model_source(choice, ds)
    for recipe in recipes:  # refuses a dropout cell on the user's own model, before anything is written
        models_of(recipe)

    store = open_study(runs_dir, sid, kind="memorization", config=config, dataset=ds, device=device)
    try:
        data_fp = ds.fingerprint()
        per_cell = len(chunked(models, chunk))
        n_todo = sum(not store.has(j.key(data_fp, models_of(j.recipe)[1])) for j in jobs)
        outs = run_jobs(jobs, store=store, models=models_of, x=ex.x, y=ex.y, test_mask=ex.test_mask,
                        n_classes=ds.n_classes, kind=ds.kind, data_fingerprint=data_fp, device=device,
                        progress=make_progress(progress, "memorization"))
        summaries, files, frames, pairs, rocs, arrays = {}, {}, {}, {}, {}, {}
        for i, (cell_label, slug) in enumerate(zip(labels, slugs)):
            out = {k: np.concatenate([o[k] for o in outs[i * per_cell : (i + 1) * per_cell]]) for k in OUTPUTS}
            m = _measure(out, pool_mask, ds, seed=seed)
            summaries[cell_label] = m.summary
            frames[cell_label], pairs[cell_label], rocs[cell_label] = m.scores, m.pairs, m.roc
            arrays[cell_label] = m.arrays
            files[cell_label] = _write_cell(store.path, slug, m, ds)
        result = MemorizationResult(
            study_dir=str(store.path), dataset=ds.summary(), model=choice.spec.name, models=models, subset=subset,
            epochs=epochs, cells=labels, summaries=summaries, files=files, jobs_trained=n_todo,
            jobs_reused=len(jobs) - n_todo, seconds=float(time.perf_counter() - t0), config=config,
            scores=frames, influence_pairs=pairs, rocs=rocs, arrays=arrays,
        )
        store.write_json(RESULT_FILE, result.to_dict())
    finally:
        store.close()
    return result


# ── plan ──────────────────────────────────────────────────────────────────────────────


def _subset_size(subset: float, n_pool: int) -> int:
    n_sub = round(subset * n_pool)
    if n_sub < 1:
        raise InvalidInputError(
            f"subset {subset} of {n_pool} training examples puts no example in a model's subset; "
            "use a larger --subset"
        )
    if n_sub >= n_pool:
        raise InvalidInputError(
            f"subset {subset} of {n_pool} training examples puts every example in every model's subset, "
            "so no model leaves one out; use a smaller --subset"
        )
    return n_sub


def subset_masks(n_models: int, *, n_pool: int, n_subset: int, seed: int, start: int = 0) -> np.ndarray:
    """Bool (n_models, n_pool): row m is model ``start + m``'s subset of ``n_subset`` examples.

    Row m depends only on ``(seed, start + m, n_pool, n_subset)``, so the models of a small
    study are the first models of a larger one.
    """
    mask = np.zeros((n_models, n_pool), dtype=bool)
    for i in range(n_models):
        rng = np.random.default_rng([seed, start + i, _SUBSET_STREAM])
        mask[i, rng.choice(n_pool, size=n_subset, replace=False)] = True
    return mask


def _check_coverage(pool_mask: np.ndarray, *, n_pool: int, n_subset: int, seed: int) -> None:
    """Every training example needs a model that trained on it and one that did not."""
    n_models = len(pool_mask)
    n_in = pool_mask.sum(axis=0)
    bad = int(((n_in == 0) | (n_in == n_models)).sum())
    if bad == 0:
        return
    needed = _models_needed(n_in, n_models, n_pool=n_pool, n_subset=n_subset, seed=seed)
    fix = f"use --models >= {needed}" if needed else "use more models or a subset nearer 0.5"
    who = "1 model leaves" if n_models == 1 else f"{n_models} models leave"
    raise InvalidInputError(
        f"{who} {bad} of {n_pool} training examples without both a model that trained on them and one "
        f"that did not (subset {n_subset} of {n_pool}); {fix}"
    )


def _models_needed(n_in: np.ndarray, n_models: int, *, n_pool: int, n_subset: int, seed: int) -> int | None:
    """Smallest model count whose (prefix of the same) subsets cover every example both ways."""
    n_in = n_in.astype(np.int64).copy()
    m = n_models
    while m < _MAX_MODELS_SEARCH:
        block = max(16, m // 2)
        masks = subset_masks(block, n_pool=n_pool, n_subset=n_subset, seed=seed, start=m)
        cum = n_in[None, :] + np.cumsum(masks, axis=0)  # (block, n_pool)
        total = m + 1 + np.arange(block)[:, None]
        ok = ((cum > 0) & (cum < total)).all(axis=1)
        if ok.any():
            return int(m + 1 + np.argmax(ok))
        n_in, m = cum[-1], m + block
    return None


def _members(pool_mask: np.ndarray, r: range, ex: Examples, *, seed: int) -> Members:
    """Train on the subset; validate (early stopping only) on the rest of the pool; never on test."""
    k, n_pool = pool_mask.shape
    train = np.zeros((k, len(ex.y)), dtype=bool)
    train[:, :n_pool] = pool_mask
    val = np.zeros_like(train)
    val[:, :n_pool] = ~pool_mask
    seeds = np.asarray([seed * _SEED_STRIDE + m for m in r], dtype=np.int64)
    return Members(seeds, train, val)


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


def _roc_dict(roc: AttackROC) -> dict:
    return {"auc": roc.auc, "tpr_at_0_1pct": roc.tpr_at_0_1pct, "tpr_at_1pct": roc.tpr_at_1pct,
            "n_members": roc.n_members, "n_nonmembers": roc.n_nonmembers}


def _auc_or_none(labels: np.ndarray, values: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    keep = np.isfinite(values)
    y = labels[keep]
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, values[keep]))


def _measure(out: dict[str, np.ndarray], pool_mask: np.ndarray, ds, *, seed: int) -> _CellMeasures:
    p = ds.n_train
    tm = pool_mask
    correct, pred = out["correct"].astype(bool), out["pred"]
    est = memorization_scores(correct[:, :p], tm)
    try:
        split = split_half_correlation(correct[:, :p], tm, rng=np.random.default_rng([seed, _SPLIT_STREAM]))
    except InvalidInputError:  # fewer than 4 models, or halves without in and out models
        split = float("nan")
    influence = influence_scores(correct[:, p:], tm).astype(np.float32)
    top = top_influence_pairs(influence, k=TOP_PAIRS)

    # membership inference over the training pool; each model the target, the others shadows
    margin = _finite(out["margin"][:, :p])
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
    # the same rule lira_scores applies: pooled variance below FIXED_VARIANCE_BELOW shadows per side
    n_in = tm.sum(axis=0)
    shadows_in, shadows_out = n_in - tm, (len(tm) - n_in) - ~tm  # (n_models, n_pool), leave-one-out
    fixed = bool(min(np.median(shadows_in), np.median(shadows_out)) < FIXED_VARIANCE_BELOW)

    flipped = ds.noisy_mask
    predicted = _majority_out(pred[:, :p], ~tm, ds.n_classes)
    scores = pd.DataFrame({
        "index": np.arange(p), "given_label": ds.y_train, "clean_label": ds.clean_labels,
        "predicted_label": predicted, "score": est.score, "stderr": est.stderr, "n_in": est.n_in,
        "n_out": est.n_out, "p_in": est.p_in, "p_out": est.p_out, "vulnerability": vulnerability,
        "flipped": flipped,
    })
    pairs = pd.DataFrame(top, columns=["train_index", "test_index", "influence"])
    pairs["train_label"] = ds.y_train[pairs["train_index"].to_numpy()]
    pairs["test_label"] = ds.y_test[pairs["test_index"].to_numpy()]
    pairs["train_score"] = est.score[pairs["train_index"].to_numpy()]
    roc_rows = []
    for name, roc in rocs.items():
        fpr, tpr = roc.downsampled(ROC_POINTS)
        roc_rows.append(pd.DataFrame({"attack": name, "fpr": fpr, "tpr": tpr}))
    roc_df = pd.concat(roc_rows, ignore_index=True)

    s = est.score[np.isfinite(est.score)]
    edges = np.asarray(SCORE_BINS)
    hist = np.bincount(np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(edges) - 1),
                       minlength=len(edges))
    has_noise = bool(flipped.any())
    top10 = scores.sort_values(["score", "stderr", "index"], ascending=[False, True, True]).head(10)
    pool_in, pool_out = tm, ~tm
    summary = {
        "n_models": len(tm),
        "n_train": int(p),
        "n_test": int(ds.n_test),
        "mean_score": float(s.mean()),
        "quantiles": {k: float(np.quantile(s, q)) for k, q in QUANTILES.items()},
        "share_above_0_5": float((s > 0.5).mean()),
        "histogram": {"edges": list(SCORE_BINS) + [1.0], "counts": hist.tolist()},
        "mean_stderr": float(np.nanmean(est.stderr)),
        "split_half_correlation": float(split),
        "attacks": {name: _roc_dict(r) for name, r in rocs.items()},
        "headline_attack": HEADLINE_ATTACK,
        "lira_fixed_variance": fixed,
        "mean_vulnerability": float(np.nanmean(vulnerability)),
        "n_flipped": int(flipped.sum()),
        "flipped_auc_score": _auc_or_none(flipped, est.score) if has_noise else None,
        "flipped_auc_vulnerability": _auc_or_none(flipped, vulnerability) if has_noise else None,
        "accuracy": {
            "train": float(correct[:, :p][pool_in].mean()),
            "held_out": float(correct[:, :p][pool_out].mean()),
            "test": float(correct[:, p:].mean()) if ds.n_test else float("nan"),
        },
        "top_memorized": [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in top10[["index", "given_label", "clean_label", "predicted_label", "score", "stderr",
                              "flipped"]].to_dict("records")
        ],
    }
    arrays = {
        "trainset_mask": tm.copy(),
        "memorization": est.score,
        "influence": influence,
        "memorization_stderr": est.stderr,
        "tr_labels": ds.y_train,
        "tt_labels": ds.y_test,
        "flipped": flipped,
    }
    return _CellMeasures(summary, scores, pairs, roc_df, arrays)


# ── files ─────────────────────────────────────────────────────────────────────────────


def _examples(m: _CellMeasures, ds) -> dict[str, np.ndarray]:
    """Features of the most memorized examples and of the top influence pairs, for the report."""
    top = m.scores.sort_values(["score", "stderr", "index"], ascending=[False, True, True])["index"]
    top = top.to_numpy()[:GALLERY]
    pairs = m.pairs.head(GALLERY_PAIRS)
    return {"top_index": top, "top_x": ds.x_train[top],
            "pair_train_x": ds.x_train[pairs["train_index"].to_numpy()],
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

