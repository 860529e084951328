"""``adapt``: regularization that tunes itself while training, against a grid of fixed strengths.

The same stratified k-fold as ``compare`` (same folds for the same seed). Inside each fold's
training part an inner validation split is carved out (``rotelab.plan.inner_split``): every
member of every row trains on the rest, adaptive schemes steer on it, and a row with several
members per fold keeps, per fold, the member with the best inner validation accuracy. The
fold's scored examples are never seen by any decision, so the rows' validation accuracies are
honest estimates — except ``grid (best on CV)``, the grid point with the best *mean CV*
accuracy: the usual way to report a tuned strength, optimistic by construction, and the
reference the adaptive schemes are held to.

Rows (compute in model-epochs; the grid has ``grid`` members per fold):

* ``baseline``: the strength off.
* ``grid (best on CV)`` and ``grid (inner val)``: one job, one member per grid point per fold;
  the whole grid's compute is counted for both.
* ``random``: as many members per fold at strengths drawn at random from the range.
* ``pbt``, ``gap``, ``awd`` at ¼ and at 1× the grid's compute (members per fold = ¼ or all of
  the grid's): population based training on the strength; gap feedback (each member its own
  target gap); adaptive weight decay (each member its own λ_awd).
* ``… replay``: fresh members retrained from scratch along the strength schedule that the
  chosen PBT or gap member followed (its lineage): the schedule's value without the selection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from rotelab.engine.adaptive import lineage
from rotelab.engine.recipe import Adaptive, Recipe
from rotelab.errors import InvalidInputError
from rotelab.executors import run_jobs
from rotelab.measures.folds import paired_difference
from rotelab.measures.noise import clean_accuracy, masked_mean, noisy_labels_memorized
from rotelab.options import ADAPT_SCHEMES, ADAPT_TECHNIQUES, DEFAULT_DATA, DEFAULT_MODEL, split_options
from rotelab.plan import Examples, Folds, InnerSplit, Job, inner_split, make_folds
from rotelab.progress import Progress
from rotelab.studies.adapt_goal import goal
from rotelab.studies.cv import mean_ci, paired_ratio
from rotelab.studies.prepare import (
    ModelArg, make_progress, open_study, prepare, result_json, short_repr, study_function, write_arrays,
    write_table,
)
from rotelab.validation import check_choice, check_float, check_int

#: technique -> (engine knob, default low, default high, log scale)
KNOBS = {"l2": ("l2", 0.01, 10.0, True), "dropout": ("dropout", 0.0, 0.8, False),
         "label-smoothing": ("label_smoothing", 0.0, 0.5, False), "mixup": ("mixup", 0.05, 4.0, True),
         "augment": ("augment", 0.0, 1.0, False)}
AWD_RANGE = (0.01, 0.5)  # λ_awd of the AWD members, log-spaced (0.1 is the technique's default)
GAP_TARGETS = (0.0, 0.3)  # train − inner-val accuracy gaps the gap members aim at, spread evenly
BUDGETS = (0.25, 1.0)  # adaptive schemes' compute, as a fraction of the grid's
_SEED_STRIDE = 1000  # member j of fold seed s: seed s·1000 + j (replays: + 500)
_RANDOM_STREAM = 0x7A4D


@dataclass(frozen=True)
class Settings:
    """The study's own options, checked and resolved."""

    technique: str
    knob: str
    low: float
    high: float
    log: bool
    grid: int
    schemes: tuple[str, ...]
    period: int
    gap_period: int
    inner_fraction: float
    folds: int


@dataclass(frozen=True, eq=False)
class AdaptResult:
    """The table (one row per scheme and budget), per-fold values and strength schedules.

    ``table`` columns: ``scheme``, ``row`` (the label), ``compute`` (model-epochs / the grid's),
    ``val_acc`` with 95% CI (clean labels of the held-out fold), ``test_acc``, ``inner_val_acc``
    (what chose the member), ``noisy_memorized`` (with label noise; lower = fewer flipped
    labels fitted), ``final_strength`` and ``lr_weighted_strength`` (means over folds; see
    :func:`lr_weighted`), ``delta_val_acc`` with CI and
    ``p_value`` against ``grid (best on CV)`` (Nadeau–Bengio corrected paired t-test),
    ``model_epochs``. ``schedules``: row -> (folds, epochs) strength of each fold's chosen member
    (AWD rows: its mean λ̄ per epoch). ``goal``: whether an adaptive row came within 0.5 points
    of the best grid point at ≤ ¼ of its compute, or beat it at equal compute.
    """

    study_dir: str
    dataset: dict
    model: str
    technique: str
    knob: str
    log_scale: bool
    grid_values: list[float]
    table: pd.DataFrame
    per_fold: dict[str, dict[str, list[float]]]
    schedules: dict[str, list[list[float]]]
    goal: dict
    folds: int
    epochs: int
    period: int
    gap_period: int
    inner_fraction: float
    label_noise: float
    seconds: float

    def __repr__(self) -> str:
        return short_repr(self, f"{self.technique} ({self.knob}) adapted in {len(self.table)} rows by {self.folds}-fold",
                          "goal met" if self.goal.get("met") else "goal missed")

    def to_dict(self) -> dict:
        return result_json(self, "table")


@study_function("adapt")
def adapt(data: Any = DEFAULT_DATA, model: ModelArg = DEFAULT_MODEL, *,
          progress: bool | Progress | None = None, **options: Any) -> AdaptResult:
    """Adaptive regularization (PBT, gap feedback, AWD) against the best of a grid of fixed
    strengths and a random search, by stratified k-fold cross-validation (see the module text).

    ``technique`` picks the strength the grid, random search, PBT and gap feedback tune (AWD
    always tunes weight decay); ``grid`` its points (members per fold), over [``low``, ``high``]
    (log-spaced for l2 and mixup). Each adaptive scheme runs with ¼ and with all of the grid's
    members per fold. ``period``: epochs between PBT's exploit steps; ``gap_period``: between
    gap feedback's steps.
    ``inner_fraction``: share of each fold's training part that steers and selects.
    """
    own, opts = split_options("adapt", options)
    s_folds = check_int("folds", own.folds, minimum=2, maximum=1000)
    p = prepare("adapt", data, model, opts)
    s = _settings(own, p.recipe.epochs, s_folds)
    ex = p.examples
    f = make_folds(ex, pool_idx=np.arange(ex.n_pool), folds=s.folds, repeats=1, seed=opts.seed)
    inner = inner_split(f, ex, fraction=s.inner_fraction, seed=opts.seed)
    base = _base_recipe(p.recipe, s, p.ds.kind)
    ref = p.model.ref(base, p.ds)
    jobs = _jobs(base, s, inner, f.seeds, opts.seed, ref)
    config = {"data": p.ds.name, "data_fingerprint": ex.fingerprint, "model_fingerprint": p.model.fingerprint,
              "recipe": base.to_dict(), "settings": asdict(s), "seed": opts.seed, "train_size": opts.train_size,
              "label_noise": opts.label_noise, "folds": s.folds}
    with open_study(p, config, own) as store:
        write_arrays(store, "folds.npz", train_mask=f.train, val_mask=f.val, inner_train=inner.train,
                     inner_val=inner.val, seeds=f.seeds, noisy=ex.flipped[: ex.n_pool])
        bar = make_progress(progress, "adapt")
        results = dict(zip(jobs, run_jobs(list(jobs.values()), ex, store=store, progress=bar, device=opts.device,
                                          threads=opts.threads)))
        chosen = {name: _choose(out, inner, jobs[name].members.k // s.folds) for name, out in results.items()}
        replays = _replay_jobs(base, s, jobs, results, chosen, inner, f.seeds, opts.seed, ref)
        if replays:
            results.update(zip(replays, run_jobs(list(replays.values()), ex, store=store, progress=bar,
                                                 device=opts.device, threads=opts.threads)))
        result = _summarize(s, {**jobs, **replays}, results, chosen, f, inner, ex, store_dir=str(store.path), ds=p.ds,
                            model=p.model.spec.name, epochs=base.epochs, label_noise=opts.label_noise)
        write_table(store, "table.csv", result.table)
        store.write_json("result.json", result.to_dict())
    return result


# ══ settings and plan ══════════════════════════════════════════════════════════════════
def _settings(own: Any, epochs: int, folds: int) -> Settings:
    """Check the study's options against each other and the epochs; resolve the defaults."""
    technique = check_choice("technique", own.technique, ADAPT_TECHNIQUES)
    knob, low, high, log = KNOBS[technique]
    low = low if own.low is None else check_float("low", own.low, low=0.0)
    high = high if own.high is None else check_float("high", own.high, low=0.0, low_open=True)
    if not low < high:
        raise InvalidInputError(f"the strength range needs low < high, got low {low} and high {high}")
    if log and low <= 0:
        raise InvalidInputError(f"{technique} is searched on a log scale: low must be > 0, got {low}")
    if knob in ("dropout", "label_smoothing") and high >= 1:
        raise InvalidInputError(f"{technique} must stay below 1: high {high}")
    if knob == "augment" and high > 1:
        raise InvalidInputError(f"augment strength is a probability: high must be <= 1, got {high}")
    grid = check_int("grid", own.grid, minimum=4, maximum=256)
    names = [n.strip() for n in str(own.schemes).split(",") if n.strip()]
    for n in names:
        check_choice("adaptive scheme", n, ADAPT_SCHEMES)
    period = max(1, epochs // 20) if own.period is None else check_int("period", own.period, minimum=1)
    gap_period = check_int("gap period", own.gap_period, minimum=1)
    for scheme, every, name in (("pbt", period, "period"), ("gap", gap_period, "gap period")):
        if every >= epochs and scheme in names:
            raise InvalidInputError(f"{name} {every} leaves no {scheme} step inside {epochs} epochs: use a "
                                    f"{name} below {epochs}")
    frac = check_float("inner fraction", own.inner_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    return Settings(technique, knob, low, high, log, grid, tuple(dict.fromkeys(names)), period, gap_period, frac,
                    folds)


def spread(low: float, high: float, n: int, *, log: bool, ends: bool) -> np.ndarray:
    """n values over [low, high], evenly (on a log scale when ``log``): the ends included
    (``ends``: a grid) or the midpoints of n equal bins (a population covering the range)."""
    t = np.linspace(0.0, 1.0, n) if ends else (np.arange(n) + 0.5) / n
    if log:
        return np.exp(np.log(low) + t * (np.log(high) - np.log(low)))
    return low + t * (high - low)


def _base_recipe(recipe: Recipe, s: Settings, kind: str) -> Recipe:
    """The recipe every row shares: the knob's machinery switched on (dropout layers, the data
    kind's transforms), every member's value set per job; no per-epoch curves (only the final
    outputs and the decisions' evaluations are needed)."""
    base = replace(recipe, eval_every=0)
    if s.knob == "dropout":
        base = replace(base, model=replace(base.model, dropout=0.5))
    if s.knob == "augment":
        from rotelab.techniques.augment_technique import DEFAULTS

        base = replace(base, augment=DEFAULTS[kind])
    return base


def _seeds(fold_seeds: np.ndarray, per_fold: int, offset: int = 0) -> np.ndarray:
    return (np.repeat(fold_seeds, per_fold) * _SEED_STRIDE + offset + np.tile(np.arange(per_fold), len(fold_seeds)))


def _jobs(base: Recipe, s: Settings, inner: InnerSplit, fold_seeds: np.ndarray, seed: int, ref) -> dict[str, Job]:
    """Every first-stage job by row key: baseline, grid, random, and each scheme at each budget."""
    f, g = s.folds, s.grid

    def job(key: str, per_fold: int, values: np.ndarray, knob: str | None = None, adaptive=None) -> Job:
        recipe = replace(base, member_values=((knob or s.knob, tuple(float(v) for v in values)),), adaptive=adaptive)
        return Job(f"adapt {key} / {f} fold(s) x {per_fold}", recipe, inner.members(_seeds(fold_seeds, per_fold),
                   per_fold), seed, ref)

    rng = np.random.default_rng([seed, _RANDOM_STREAM])
    u = rng.random((f, g))
    random_values = np.exp(np.log(s.low) + u * np.log(s.high / s.low)) if s.log else s.low + u * (s.high - s.low)
    jobs = {"baseline": job("baseline", 1, np.zeros(f)),
            "grid": job("grid", g, np.tile(spread(s.low, s.high, g, log=s.log, ends=True), f)),
            "random": job("random", g, random_values.ravel())}
    for scheme in s.schemes:
        for budget in BUDGETS:
            p = scheme_members(scheme, budget, g)
            key = f"{scheme}@{budget:g}"
            if scheme == "awd":
                jobs[key] = job(key, p, np.tile(spread(*AWD_RANGE, p, log=True, ends=False), f), knob="awd")
                continue
            a = Adaptive(scheme, s.knob, period=s.period if scheme == "pbt" else s.gap_period, population=p,
                         low=s.low, high=s.high, log=s.log)
            start = spread(s.low, s.high, p, log=s.log, ends=False)
            if scheme == "gap":
                middle = spread(s.low, s.high, 1, log=s.log, ends=False)
                start = np.full(p, middle[0])
                a = replace(a, population=0, targets=tuple(np.tile(spread(*GAP_TARGETS, p, log=False, ends=False), f)))
            jobs[key] = job(key, p, np.tile(start, f), adaptive=a)
    return jobs


def _choose(out: dict[str, np.ndarray], inner: InnerSplit, per_fold: int) -> np.ndarray:
    """Per fold, the member with the best inner validation accuracy (ties: lower loss): (F,)
    member indices. Only the inner split decides: the fold's scored examples stay unseen."""
    rows = np.repeat(np.arange(len(inner.val)), per_fold)
    acc = masked_mean(out["correct"], inner.val[rows]).reshape(-1, per_fold)
    loss = masked_mean(out["loss"], inner.val[rows]).reshape(-1, per_fold)
    best = np.array([np.lexsort((lo, -a))[0] for a, lo in zip(acc, loss)])
    return np.arange(len(acc)) * per_fold + best


def _replay_jobs(base: Recipe, s: Settings, jobs: dict[str, Job], results: dict, chosen: dict, inner: InnerSplit,
                 fold_seeds: np.ndarray, seed: int, ref) -> dict[str, Job]:
    """For each PBT and gap row, fresh members (new seeds, one per fold) along the chosen
    member's lineage: its strength schedule, epoch by epoch, with no copying and no feedback."""
    out: dict[str, Job] = {}
    for key, job in jobs.items():
        if job.recipe.adaptive is None:
            continue
        res = results[key]
        sched = tuple(tuple(float(v) for v in lineage(res["strength"], res["parent"], int(m))) for m in chosen[key])
        recipe = replace(base, member_values=((s.knob, tuple(r[0] for r in sched)),),
                         adaptive=Adaptive("replay", s.knob, low=s.low, high=s.high, schedule=sched))
        out[f"{key}/replay"] = Job(f"adapt {key} replay / {s.folds} fold(s)", recipe,
                                   inner.members(_seeds(fold_seeds, 1, offset=500), 1), seed, ref)
    return out


# ══ the table ══════════════════════════════════════════════════════════════════════════
def scheme_members(scheme: str, budget: float, grid: int) -> int:
    """Members per fold an adaptive scheme runs with at ``budget`` (a share of the grid's):
    PBT needs 2 to exploit one from another."""
    return max(2 if scheme == "pbt" else 1, round(grid * budget))


def _budget_label(scheme: str, budget: float, grid: int) -> str:
    """``¼`` or ``1×``, the share of the grid's members a scheme runs with; the share it really
    got where PBT's minimum of 2 members raised it (a grid of 4: ``pbt ½``, not ``pbt ¼``)."""
    share = scheme_members(scheme, budget, grid) / grid
    return {0.25: "¼", 0.5: "½", 0.75: "¾", 1.0: "1×"}.get(share, f"{share:.2g}×")


def _row_plan(s: Settings, results: dict, chosen: dict, cv_best: np.ndarray) -> list[tuple[str, str, str, np.ndarray]]:
    """(label, scheme, job key, chosen members (F,)) for every row, in the table's order."""
    rows = [("baseline", "baseline", "baseline", chosen["baseline"]),
            ("grid (best on CV)", "grid", "grid", cv_best),
            ("grid (inner val)", "grid", "grid", chosen["grid"]),
            ("random (inner val)", "random", "random", chosen["random"])]
    for scheme in s.schemes:
        for budget in BUDGETS:
            key = f"{scheme}@{budget:g}"
            name = f"{scheme} {_budget_label(scheme, budget, s.grid)}"
            rows.append((name, scheme, key, chosen[key]))
            if f"{key}/replay" in results:
                rows.append((f"{name} replay", f"{scheme}-replay", f"{key}/replay", np.arange(s.folds)))
    return rows


def _fold_values(out: dict, members: np.ndarray, f: Folds, inner: InnerSplit, ex: Examples,
                 noisy: bool) -> dict[str, np.ndarray]:
    """Per-fold metrics (F,) of the chosen members."""
    pred, correct = out["pred"][members], out["correct"][members]
    m = {"val_acc": clean_accuracy(pred, ex.clean, f.val),
         "test_acc": masked_mean(correct, np.broadcast_to(ex.test_mask, f.val.shape)),
         "inner_val_acc": masked_mean(correct, inner.val)}
    if noisy:
        m["noisy_memorized"] = noisy_labels_memorized(pred, ex.y, ex.clean, inner.train)
    return m


def _schedule(s: Settings, job: Job, out: dict, members: np.ndarray) -> np.ndarray:
    """(F, E) strength each fold's chosen member trained with: its lineage under PBT or gap
    feedback, the replayed schedule, AWD's mean λ̄ per epoch, or its fixed value."""
    if "awd_lambda" in out:
        return out["awd_lambda"][members]
    if "strength" in out:
        return np.stack([lineage(out["strength"], out["parent"], int(m)) for m in members])
    values = np.asarray(job.recipe.values(s.knob), dtype=np.float64)
    return np.repeat(values[members][:, None], job.recipe.epochs, axis=1)


def lr_weighted(sched: np.ndarray, schedule: str) -> np.ndarray:
    """(F,) each schedule's strength weighted by the learning rate of its epochs,
    ``Σ lr_e λ_e / Σ lr_e`` for ``sched`` of shape (F, E): under a cosine schedule the last
    epochs barely move the weights, so the final strength says little. For decoupled weight
    decay it is exact (the fixed λ that decays the weights as much); for the other knobs a
    summary. ``lr_e``: the cosine's mean over epoch e (``constant``: all equal)."""
    e = sched.shape[1]
    if schedule == "cosine":
        edges = np.sin(np.pi * np.arange(e + 1) / e)
        lr = 0.5 + e / (2 * np.pi) * np.diff(edges)  # ∫ ½(1 + cos πu) du over [k/e, (k+1)/e], times e
    else:
        lr = np.ones(e)
    return sched @ lr / lr.sum()


def _grid_best(s: Settings, grid_out: dict, f: Folds, ex: Examples) -> np.ndarray:
    """(F,) members of the grid point with the best mean accuracy on the folds' scored examples:
    chosen on the very numbers it is reported with (optimistic by construction)."""
    acc = clean_accuracy(grid_out["pred"], ex.clean, f.val[np.repeat(np.arange(s.folds), s.grid)])
    return np.arange(s.folds) * s.grid + int(np.argmax(acc.reshape(s.folds, s.grid).mean(0)))


def _summarize(s: Settings, jobs: dict[str, Job], results: dict, chosen: dict, f: Folds, inner: InnerSplit,
               ex: Examples, *, store_dir: str, ds, model: str, epochs: int, label_noise: float) -> AdaptResult:
    noisy = bool(ex.flipped.any())
    grid_compute = float(np.asarray(results["grid"]["epochs_run"]).sum())
    rows, per_fold, schedules = [], {}, {}
    for label, scheme, key, members in _row_plan(s, results, chosen, _grid_best(s, results["grid"], f, ex)):
        m = _fold_values(results[key], members, f, inner, ex, noisy)
        compute = _compute(results, key)
        sched = _schedule(s, jobs[key], results[key], members)
        mean, lo, hi = mean_ci(m["val_acc"], paired_ratio(s.folds))
        rows.append({"row": label, "scheme": scheme, "compute": compute / grid_compute, "model_epochs": int(compute),
                     "val_acc": mean, "val_acc_ci_low": lo, "val_acc_ci_high": hi,
                     **{k: mean_ci(v)[0] for k, v in m.items() if k != "val_acc"},
                     "final_strength": float(np.mean(sched[:, -1])),
                     "lr_weighted_strength": float(np.mean(lr_weighted(sched, jobs[key].recipe.schedule)))})
        per_fold[label] = {k: [float(x) for x in v] for k, v in m.items()}
        schedules[label] = sched.tolist()
    ref = np.asarray(per_fold["grid (best on CV)"]["val_acc"])
    for row in rows:
        d = paired_difference(ref, np.asarray(per_fold[row["row"]]["val_acc"]), test_train_ratio=paired_ratio(s.folds))
        itself = row["row"] == "grid (best on CV)"  # not tested against itself: no p
        row.update(delta_val_acc=d.mean_diff, delta_ci_low=d.ci_low, delta_ci_high=d.ci_high,
                   p_value=float("nan") if itself else d.p_value)
    table = pd.DataFrame(rows)
    bar = goal(table, per_fold=per_fold, test_train_ratio=paired_ratio(s.folds))
    return AdaptResult(
        study_dir=store_dir, dataset=ds.summary(), model=model, technique=s.technique, knob=s.knob,
        log_scale=s.log, grid_values=[float(v) for v in spread(s.low, s.high, s.grid, log=s.log, ends=True)],
        table=table, per_fold=per_fold, schedules=schedules, goal=bar, folds=s.folds, epochs=epochs,
        period=s.period, gap_period=s.gap_period, inner_fraction=s.inner_fraction, label_noise=float(label_noise),
        seconds=float(sum(float(o["seconds"]) for o in results.values())))


def _compute(results: dict, key: str) -> float:
    """Model-epochs a row cost: its job's members × epochs (a replay adds its scheme's)."""
    total = float(np.asarray(results[key]["epochs_run"]).sum())
    if key.endswith("/replay"):
        total += float(np.asarray(results[key.split("/")[0]]["epochs_run"]).sum())
    return total


__all__ = ["AdaptResult", "KNOBS", "adapt", "goal", "lr_weighted", "spread"]
