"""The four benchmark parts. Each returns plain dicts (rows) that ``__main__`` writes out."""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from rotelab.data import load_dataset
from rotelab.engine import Members, Recipe, train_job
from rotelab.measures.folds import fold_masks, stratified_folds
from rotelab.measures.memorization import memorization_scores
from rotelab.models import ModelSpec, build_model

from bench.loop import train_loop
from bench.machine import Timer, load, threads, timed


@dataclass(frozen=True)
class Config:
    """Sizes of one run; ``QUICK`` shrinks everything to a smoke test."""

    ks: tuple[int, ...] = (1, 8, 64, 256)  # members trained at once (part 1)
    mlp_epochs: int = 20  # part 1, MNIST-1D mlp
    cnn_epochs: int = 10  # part 1, digits cnn
    loop_max: tuple[tuple[str, int], ...] = (("mlp", 256), ("cnn", 64))  # loop models measured; more = extrapolated
    train_size: int | None = None  # None = the whole training split
    cv_epochs: int = 50  # part 2: the mlp default of `rotelab compare`
    cv_repeats: int = 5  # part 2: repetitions of 5-fold CV for the accuracy comparison
    flops_k: int = 64  # part 3: the members the goal is stated for
    mem_models: int = 512  # part 4
    mem_job: int = 128  # members per job
    mem_epochs: int = 50  # the mlp default
    mem_fraction: float = 0.7


FULL = Config()
QUICK = Config(ks=(1, 4), mlp_epochs=1, cnn_epochs=1, loop_max=(("mlp", 4), ("cnn", 2)), train_size=300,
               cv_epochs=2, cv_repeats=2, flops_k=4, mem_models=8, mem_job=4, mem_epochs=1)
BATCH = 100  # examples per step, every part
LR = 1e-2  # the engine's default (Adam, cosine schedule)


def _examples(name: str, train_size: int | None):
    ds = load_dataset(name, train_size=train_size)
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    return ds, x, y


def linear_macs(model: nn.Module) -> int:
    """Σ fan_in·fan_out over the Linear layers: multiply-adds per example of a forward pass."""
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))


# ── 1. vectorized vs loop ───────────────────────────────────────────────────────────────
def vs_loop(cfg: Config, device: torch.device, n_threads: int, log) -> list[dict]:
    rows = []
    loop_max = dict(cfg.loop_max)
    for family, data, epochs in (("mlp", "mnist1d", cfg.mlp_epochs), ("cnn", "digits", cfg.cnn_epochs)):
        ds, x, y = _examples(data, cfg.train_size)
        spec = ModelSpec(family).resolved()
        factory = lambda: build_model(spec, ds.feature_shape, ds.n_classes)  # noqa: E731
        recipe = Recipe(model=spec, epochs=epochs, batch_size=BATCH, lr=LR, eval_every=0)
        pool, test_idx = np.arange(ds.n_train), np.arange(ds.n_train, len(y))
        test = np.zeros(len(y), bool)
        test[test_idx] = True
        n_loop = min(max(cfg.ks), loop_max[family])
        log(f"  {family}/{data}: loop of {n_loop} models, {epochs} epochs (load {load():.1f})")
        # the loop runs under what every engine job gets on the CPU: its thread count and allocator setting
        with threads(n_threads):
            loop = train_loop(factory, x, y, train_idx=pool, test_idx=test_idx, seeds=range(n_loop),
                              recipe=recipe, device=device)
        for k in cfg.ks:
            train = np.zeros((k, len(y)), bool)
            train[:, pool] = True
            log(f"  {family}/{data}: {k} members at once (load {load():.1f})")
            load0 = load()
            with timed(device) as t:
                out = train_job(factory, x, y, members=Members(np.arange(k), train, np.zeros_like(train)),
                                test_mask=test, recipe=recipe, n_classes=ds.n_classes, device=device)
            member_acc = out["correct"][:, test].mean(1)
            vec_acc = float(member_acc.mean())
            m = min(k, n_loop)
            scale = k / m  # 1 when measured; else linear in the number of models (each costs the same)
            loop_wall, loop_cpu = loop["wall"][m - 1] * scale, loop["cpu"][m - 1] * scale
            loop_acc = float(np.mean(loop["acc"][:m]))
            rows.append({
                "model": family, "data": data, "k": k, "epochs": epochs, "n_train": int(ds.n_train),
                "vectorized": bool(out["vectorized"]),
                "vec_wall": t.wall, "vec_cpu": t.cpu, "vec_models_per_min": 60 * k / t.wall,
                "loop_wall": loop_wall, "loop_cpu": loop_cpu, "loop_models_per_min": 60 * k / loop_wall,
                "loop_models_measured": m, "loop_extrapolated": m < k,
                "speedup_wall": loop_wall / t.wall, "speedup_cpu": loop_cpu / t.cpu,
                "vec_acc": vec_acc, "loop_acc": loop_acc, "acc_diff_points": 100 * (vec_acc - loop_acc),
                # model k of both columns starts and is fed alike: how far apart float rounding moves one pair,
                # and how much single models of this recipe spread
                "pair_gap_points": float(100 * np.abs(member_acc[:m] - np.asarray(loop["acc"][:m])).mean()),
                "model_std_points": float(100 * np.std(loop["acc"], ddof=1)) if n_loop > 1 else None,
                "load": round((load0 + load()) / 2, 2),
                "train_macs_per_example": linear_macs(factory()) if family == "mlp" else None,
            })
    return rows


# ── 2. against scikit-learn ──────────────────────────────────────────────────────────────
def vs_sklearn(cfg: Config, device: torch.device, n_threads: int, log) -> list[dict]:
    """5-fold CV of the mlp on digits, by rotelab and by scikit-learn, once and R times.

    One 5-fold CV is what the wall time compares. Its accuracy moves by ~0.3 points with the
    seed alone (scikit-learn, lr 1e-2, seeds 0–7: 97.5–98.1%), so accuracy is also compared
    over R repetitions (different folds and seeds; ``repeats=R`` in rotelab, random_state r on
    repetition r's folds in scikit-learn): the mean, with the standard error over repetitions.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import cross_validate
    from sklearn.neural_network import MLPClassifier

    ds, x, y = _examples("digits", cfg.train_size)
    n_pool, e, reps = ds.n_train, cfg.cv_epochs, cfg.cv_repeats
    splits = stratified_folds(ds.y_train, n_folds=5, n_repeats=reps, seed=0)  # the folds `rotelab compare` uses
    train, val = fold_masks(splits, len(y))  # (5R, N): repetition r is rows 5r … 5r + 4
    test = np.zeros(len(y), bool)
    test[n_pool:] = True
    spec = ModelSpec("mlp").resolved()  # 64 -> 100 -> 100 -> 10, as hidden_layer_sizes=(100, 100)
    recipe = Recipe(model=spec, epochs=e, batch_size=BATCH, lr=LR)  # compare's recipe: curves every epoch
    rows = []

    def row(who, one, one_acc, many, many_acc, **extra):
        """one/many: Timers of one CV and of R; *_acc: (5,) and (R, 5) validation accuracies."""
        per_rep = np.asarray(many_acc).reshape(reps, 5).mean(1)
        return {"who": who, "wall": one.wall, "cpu": one.cpu, "val_acc": float(np.mean(one_acc)),
                "val_acc_std": float(np.std(one_acc, ddof=1)), "wall_repeated": many.wall, "cpu_repeated": many.cpu,
                "val_acc_repeated": float(per_rep.mean()),
                "val_acc_se": float(per_rep.std(ddof=1) / np.sqrt(reps)) if reps > 1 else float("nan"),
                "epochs": e, **extra}

    try:  # the whole study as a user runs it, when this checkout has it
        from rotelab import compare

        got = []
        for r in (1, reps):
            log(f"  rotelab.compare(techniques='baseline', folds=5, repeats={r}) (load {load():.1f})")
            with tempfile.TemporaryDirectory() as runs, timed(device) as t:
                res = compare("digits", "mlp", techniques="baseline", folds=5, repeats=r, epochs=e,
                              train_size=cfg.train_size, runs_dir=runs, device=str(device), progress=False)
            got.append((t, res.per_fold[res.table.iloc[0]["technique"]]["val_acc"]))
        rows.append(row("rotelab.compare (the whole study: data, store, curves every epoch, summary)",
                        got[0][0], got[0][1], got[1][0], got[1][1], primary=True))
    except Exception as exc:  # noqa: BLE001 — another session may be mid-edit; say so in the results
        rows.append({"who": "rotelab.compare", "error": f"{type(exc).__name__}: {exc}"})

    for every, label in ((1, "rotelab engine alone (train_job, one job of fold-members, curves every epoch)"),
                         (0, "rotelab engine alone, no curves (evaluates once, at the end, as scikit-learn)")):
        got = []
        for n in (5, 5 * reps):
            log(f"  {label}, {n} members, {e} epochs (load {load():.1f})")
            with timed(device) as t:
                out = train_job(lambda: build_model(spec, ds.feature_shape, ds.n_classes), x, y,
                                members=Members(np.arange(n), train[:n], val[:n]), test_mask=test,
                                recipe=replace(recipe, eval_every=every), n_classes=ds.n_classes, device=device,
                                job_seed=0)
            got.append((t, [float(out["correct"][i, val[i]].mean()) for i in range(n)]))
        rows.append(row(label, got[0][0], got[0][1], got[1][0], got[1][1],
                        primary=every == 1 and not any(r.get("primary") for r in rows)))

    xs = ds.x_train.reshape(n_pool, -1)
    for lr, stop, label in ((1e-3, True, "scikit-learn MLPClassifier, its default lr 1e-3"),
                            (LR, True, "scikit-learn MLPClassifier, lr 1e-2 as rotelab"),
                            (LR, False, "scikit-learn MLPClassifier, lr 1e-2, its early stop off (all epochs)")):
        log(f"  {label}, {reps} × 5-fold (load {load():.1f})")
        times, accs, iters = [], [], []
        for r in range(reps):
            clf = MLPClassifier(hidden_layer_sizes=(100, 100), max_iter=e, batch_size=BATCH, learning_rate_init=lr,
                                random_state=r, n_iter_no_change=10 if stop else e + 1)
            # the same thread count for its BLAS, and the same allocator setting, as an engine job
            with warnings.catch_warnings(), threads(n_threads):
                warnings.simplefilter("ignore", ConvergenceWarning)
                with timed(torch.device("cpu")) as t:
                    cv = cross_validate(clf, xs, ds.y_train, cv=splits[5 * r: 5 * r + 5], return_estimator=True)
            times.append(t)
            accs.append(cv["test_score"])
            iters += [est.n_iter_ for est in cv["estimator"]]
        many = Timer(sum(t.wall for t in times), sum(t.cpu for t in times))
        rows.append(row(label, times[0], accs[0], many, np.concatenate(accs), epochs_run=float(np.mean(iters))))
    return rows


# ── 3. against the machine ───────────────────────────────────────────────────────────────
def vs_peak(loop_rows: list[dict], peak: dict, n_threads: int) -> list[dict]:
    """Training FLOPs of the MLP jobs of part 1 over their wall time, against the matmul peak.

    FLOPs = 3 × 2 × n_train × Σ fan_in·fan_out × epochs × K: forward 2 FLOPs per
    multiply-add, backward twice the forward (input and weight gradients); bias, ReLU,
    softmax and optimizer work are not counted (they are < 1% of the multiply-adds).
    The time is the whole job: setup, every step, and the final evaluation of all examples.
    Against the machine's peak (the best thread count) and against the peak at the thread
    count the engine ran with.
    """
    at_n = peak.get(f"threads_{n_threads}", {}).get("flops_wall", peak["peak_flops"])
    rows = []
    for r in loop_rows:
        if r["model"] != "mlp":
            continue
        flops = 6 * r["n_train"] * r["train_macs_per_example"] * r["epochs"] * r["k"]
        rows.append({"k": r["k"], "flops": flops, "wall": r["vec_wall"], "cpu": r["vec_cpu"],
                     "flops_per_s": flops / r["vec_wall"], "of_peak": flops / r["vec_wall"] / peak["peak_flops"],
                     "of_peak_at_threads": flops / r["vec_wall"] / at_n,
                     "flops_per_cpu_s": flops / r["vec_cpu"],
                     "of_one_thread_cpu": flops / r["vec_cpu"] / peak["one_thread_flops_cpu"]})
    return rows


# ── 4. memorization at scale ─────────────────────────────────────────────────────────────
def memorization(cfg: Config, device: torch.device, log) -> dict:
    ds, x, y = _examples("mnist1d", cfg.train_size)
    n_pool, n_in = ds.n_train, int(round(cfg.mem_fraction * ds.n_train))
    spec = ModelSpec("mlp").resolved()
    recipe = Recipe(model=spec, epochs=cfg.mem_epochs, batch_size=BATCH, lr=LR, eval_every=0)  # final outputs only
    rng = np.random.default_rng(0)
    train = np.zeros((cfg.mem_models, len(y)), bool)
    for i in range(cfg.mem_models):
        train[i, rng.choice(n_pool, size=n_in, replace=False)] = True
    test = np.zeros(len(y), bool)
    test[n_pool:] = True
    correct = []
    with timed(device) as t:
        for start in range(0, cfg.mem_models, cfg.mem_job):
            sl = slice(start, start + cfg.mem_job)
            log(f"  job {start // cfg.mem_job + 1}/{-(-cfg.mem_models // cfg.mem_job)}: "
                f"{train[sl].shape[0]} members (load {load():.1f})")
            out = train_job(lambda: build_model(spec, ds.feature_shape, ds.n_classes), x, y,
                            members=Members(np.arange(start, start + train[sl].shape[0]), train[sl],
                                            np.zeros_like(train[sl])),
                            test_mask=test, recipe=recipe, n_classes=ds.n_classes, device=device)
            correct.append(out["correct"][:, :n_pool])
        t_scores = time.perf_counter()
        est = memorization_scores(np.concatenate(correct), train[:, :n_pool])
        scores_s = time.perf_counter() - t_scores
    finite = np.isfinite(est.score)
    return {"models": cfg.mem_models, "members_per_job": cfg.mem_job, "epochs": cfg.mem_epochs,
            "fraction": cfg.mem_fraction, "n_examples": int(n_pool), "wall": t.wall, "cpu": t.cpu,
            "scores_seconds": scores_s, "scored": int(finite.sum()),
            "mean_score": float(np.nanmean(est.score)), "high_share": float((est.score[finite] > 0.5).mean()),
            "min_out_models": int(est.n_out.min())}
