"""``python -m bench [--quick] [--parts 1,2,3,4] [--device cpu|cuda|auto] [--threads N] [--loop-max N] [--out DIR]``."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from rotelab.engine import Members, Recipe, train_job
from rotelab.engine.threads import cpu_threads
from rotelab.engine.train import resolve_device
from rotelab.models import ModelSpec, build_model

from bench import parts, precision, realdata
from bench.loop import train_loop
from bench.machine import load, machine, matmul_peak

GOALS = {"loop": 10.0, "peak": 0.40, "memorization_s": 300.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def warm_up(device: torch.device) -> None:
    """Pay one-time costs before any timer runs: the first optimizer imports torch._dynamo
    (seconds), and the first kernels pick their code paths."""
    x = np.random.default_rng(0).normal(size=(64, 1, 8)).astype(np.float32)
    y = np.arange(64) % 4
    spec = ModelSpec("mlp", width=8).resolved()
    recipe = Recipe(model=spec, epochs=1, batch_size=32, eval_every=0)
    train = np.ones((2, 64), bool)
    train_job(lambda: build_model(spec, (1, 8), 4), x, y, members=Members(np.arange(2), train, ~train),
              test_mask=np.ones(64, bool), recipe=recipe, n_classes=4, device=device)
    train_loop(lambda: build_model(spec, (1, 8), 4), x, y, train_idx=np.arange(64), test_idx=np.arange(64),
               seeds=[0], recipe=recipe, device=device)


def fmt(v, spec: str = ".1f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def report(res: dict) -> str:
    m, lines = res["machine"], []
    add = lines.append
    add(f"# rotelab benchmarks{' (quick smoke run: sizes too small to mean anything)' if res['quick'] else ''}\n")
    add(f"{m['date']} · {m['cpu']} · {m['cores']} cores · torch {m['torch']} · python {m['python']} · "
        f"device {m['device']}{' (' + m['gpu'] + ')' if m['gpu'] else ''} · torch threads {m['torch_threads']}, "
        f"engine threads {m['engine_threads']} · load average {m['load_at_start']} at start, "
        f"{res['load_at_end']} at end · commit {m['git_commit'] or '?'}\n")
    add("Wall = seconds a user waits; CPU = this process's CPU seconds (all threads). On a shared "
        "machine wall time grows with the load (runnable processes per core) while CPU time stays "
        "close to the cost of the work, so both are given.\n")
    pk = res.get("peak")
    if pk:
        per = ", ".join(f"{k.split('_')[1]} thread(s): {v['flops_wall'] / 1e9:.0f} GFLOP/s"
                        for k, v in pk.items() if k.startswith("threads_"))
        add(f"**Machine peak**: {pk['n']}×{pk['n']} float32 `torch.mm`, best of {pk['reps']} — {per}; "
            f"peak = {pk['peak_flops'] / 1e9:.0f} GFLOP/s.\n")
    if "vs_loop" in res:
        add("## 1. Vectorized engine vs a per-model PyTorch loop\n")
        add("Same recipe, seeds and shuffled batches on both sides (Adam lr 1e-2, cosine, batch 100, "
            "data on the device); the loop is `nn.Module` + `torch.optim.AdamW` per model, trained in turn, "
            f"at the engine's thread count. Goal: ≥ {GOALS['loop']:.0f}× for the MLP at K = 64; mean test "
            "accuracies within 1 point.\n")
        add("| model | K | epochs | engine wall s (CPU s) | models/min | loop wall s (CPU s) | models/min "
            "| speed-up wall (CPU) | mean test acc engine / loop (gap) | pair gap | load |")
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in res["vs_loop"]:
            ex = f" ¹" if r["loop_extrapolated"] else ""
            add(f"| {r['model']} ({r['data']}) | {r['k']} | {r['epochs']} | {r['vec_wall']:.1f} ({r['vec_cpu']:.1f}) "
                f"| {r['vec_models_per_min']:.1f} | {r['loop_wall']:.1f} ({r['loop_cpu']:.1f}){ex} "
                f"| {r['loop_models_per_min']:.1f} | **{r['speedup_wall']:.1f}×** ({r['speedup_cpu']:.1f}×) "
                f"| {100 * r['vec_acc']:.1f} / {100 * r['loop_acc']:.1f} ({r['acc_diff_points']:+.1f}) "
                f"| {r['pair_gap_points']:.1f} | {r['load']} |")
        std = {r["model"]: r["model_std_points"] for r in res["vs_loop"] if r["model_std_points"] is not None}
        add("\nPair gap: mean |accuracy of engine member k − accuracy of loop model k| in points. The two "
            "columns train the same models (same initial weights and batches), apart from float rounding "
            "(batched vs single matrix products, fused vs per-tensor Adam), which 20 epochs amplify into "
            "a different but equally good model: single models of these recipes spread by "
            + ", ".join(f"{v:.1f} points ({k})" for k, v in std.items()) + " (std over the loop's models), so at "
            "K = 1 the gap is that noise; the means over many models agree closely.")
        if any(r["loop_extrapolated"] for r in res["vs_loop"]):
            add("\n¹ loop time extrapolated linearly from the first "
                f"{max(r['loop_models_measured'] for r in res['vs_loop'] if r['loop_extrapolated'])} models "
                "measured (each model of the loop costs the same); accuracy is the mean of those models.")
        add("")
    if "vs_sklearn" in res:
        add("## 2. 5-fold cross-validation of an MLP (100, 100) on digits vs scikit-learn\n")
        reps = res["config"]["cv_repeats"]
        add("Same folds, epochs (max_iter) and batch size; scikit-learn keeps its own stopping rule "
            "(it may stop early, which only helps its time) and runs at the engine's thread count. "
            "`rotelab.compare` also evaluates every example after every epoch (its curves); the last "
            "rotelab row leaves that out, to show the training alone. One 5-fold CV's accuracy moves by "
            f"a few tenths of a point with the seed alone, so accuracy is also given over {reps} repetitions "
            f"(other folds and seeds): mean ± standard error over the repetitions. Goal: faster at equal "
            "or better accuracy.\n")
        add(f"| who | one 5-fold CV: wall s (CPU s) | val acc ± std over folds | {reps} × 5-fold CV: wall s "
            "(CPU s) | val acc ± s.e. | epochs run |")
        add("|---|---|---|---|---|---|")
        for r in res["vs_sklearn"]:
            if "error" in r:
                add(f"| {r['who']} | not run: {r['error'][:120]} | | | | |")
                continue
            add(f"| {r['who']} | {r['wall']:.2f} ({r['cpu']:.2f}) | {100 * r['val_acc']:.1f} ± "
                f"{100 * r['val_acc_std']:.1f} | {r['wall_repeated']:.2f} ({r['cpu_repeated']:.2f}) "
                f"| **{100 * r['val_acc_repeated']:.2f}** ± {100 * r['val_acc_se']:.2f} "
                f"| {fmt(r.get('epochs_run', r['epochs']), '.0f')} |")
        add("")
    if "vs_peak" in res:
        add("## 3. Achieved training FLOP/s vs the machine's matmul peak (MNIST-1D MLP)\n")
        add("FLOPs = 3 × 2 × n_train × Σ fan_in·fan_out × epochs × K (forward 2 per multiply-add, "
            "backward twice the forward; Σ = 40·100 + 100·100 + 100·10 = 15 000), over the job's whole "
            "wall time (setup and final evaluation of every example included). CPU-time column: the same "
            f"FLOPs per CPU second against one thread's matmul FLOPs per CPU second. Goal: ≥ {GOALS['peak']:.0%} "
            "at K = 64.\n")
        nt = m["engine_threads"]
        add(f"| K | GFLOP | wall s | GFLOP/s | of machine peak | of the peak at {nt} thread(s) "
            "| GFLOP per CPU s | of one thread's peak per CPU s |")
        add("|---|---|---|---|---|---|---|---|")
        for r in res["vs_peak"]:
            add(f"| {r['k']} | {r['flops'] / 1e9:.0f} | {r['wall']:.1f} | {r['flops_per_s'] / 1e9:.1f} "
                f"| **{r['of_peak']:.0%}** | {r['of_peak_at_threads']:.0%} | {r['flops_per_cpu_s'] / 1e9:.1f} "
                f"| {r['of_one_thread_cpu']:.0%} |")
        add("")
    if "memorization" in res:
        r = res["memorization"]
        add("## 4. Memorization scores for every MNIST-1D training example\n")
        add(f"{r['models']} MLPs, each on a random {r['fraction']:.0%} of the {r['n_examples']} training examples, "
            f"{r['epochs']} epochs, trained as jobs of {r['members_per_job']} members; then "
            "`memorization_scores`. Goal: under 5 minutes.\n")
        add("| models | wall s (CPU s) | models/min | scores s | examples scored | mean score | share > 0.5 "
            "| fewest models without an example |")
        add("|---|---|---|---|---|---|---|---|")
        add(f"| {r['models']} | **{r['wall']:.0f}** ({r['cpu']:.0f}) | {60 * r['models'] / r['wall']:.0f} "
            f"| {r['scores_seconds']:.3f} | {r['scored']} | {r['mean_score']:.3f} | {r['high_share']:.1%} "
            f"| {r['min_out_models']} |")
        add("")
    if "realdata" in res:
        lines += realdata.markdown(res["realdata"])
    if "precision" in res:
        lines += precision.markdown(res["precision"], m["device"])
    add("## Against the goals\n")
    add("| figure | goal | measured |")
    add("|---|---|---|")
    for g in res["goals"]:
        add(f"| {g['figure']} | {g['goal']} | {g['measured']} {'✓' if g['met'] else '✗'} |")
    return "\n".join(lines) + "\n"


def goals(res: dict, cfg: parts.Config) -> list[dict]:
    out = []
    mlp = {r["k"]: r for r in res.get("vs_loop", []) if r["model"] == "mlp"}
    if cfg.flops_k in mlp:
        r = mlp[cfg.flops_k]
        out.append({"figure": f"engine vs loop, MLP, K = {cfg.flops_k}", "goal": f"≥ {GOALS['loop']:.0f}×",
                    "measured": f"{r['speedup_wall']:.1f}× wall ({r['speedup_cpu']:.1f}× CPU)",
                    "met": r["speedup_wall"] >= GOALS["loop"]})
    if "vs_loop" in res:
        many = [r for r in res["vs_loop"] if min(r["k"], r["loop_models_measured"]) >= 8]
        one = [r for r in res["vs_loop"] if r["k"] == 1]
        if many:
            worst = max(abs(r["acc_diff_points"]) for r in many)
            out.append({"figure": "mean test accuracy engine vs loop (K ≥ 8)", "goal": "within 1 point",
                        "measured": f"largest gap {worst:.2f} points", "met": worst <= 1.0})
        if one:
            worst = max(abs(r["acc_diff_points"]) for r in one)
            out.append({"figure": "test accuracy engine vs loop, K = 1 (one model each: float-rounding noise)",
                        "goal": "within 1 point", "measured": f"largest gap {worst:.2f} points", "met": worst <= 1.0})
    sk = [r for r in res.get("vs_sklearn", []) if "error" not in r]
    theirs = [r for r in sk if r["who"].startswith("scikit")]
    ours = [r for r in sk if r["who"].startswith("rotelab") and r.get("primary")]
    if theirs and ours:
        ours, reps = ours[0], res["config"]["cv_repeats"]
        default = next(r for r in theirs if "default" in r["who"])
        top = max(theirs, key=lambda r: r["val_acc_repeated"])
        for name, other in (("at its defaults (lr 1e-3, its early stop)", default),
                            ("at its most accurate setting", top)):
            diff = ours["val_acc_repeated"] - other["val_acc_repeated"]
            se = math.hypot(ours["val_acc_se"], other["val_acc_se"])
            acc_ok = diff >= -2 * se  # equal within noise, or better
            verdict = "better" if diff > 2 * se else "equal within 2 s.e." if acc_ok else "worse"
            out.append({"figure": f"5-fold CV vs scikit-learn {name}", "goal": "faster, accuracy ≥",
                        "measured": f"{ours['who'].split(' (')[0]} {ours['wall']:.2f} s vs {other['wall']:.2f} s "
                                    f"({other['wall'] / ours['wall']:.2f}×) for one 5-fold CV; accuracy over {reps} "
                                    f"repetitions {100 * ours['val_acc_repeated']:.2f}% vs "
                                    f"{100 * other['val_acc_repeated']:.2f}%: {100 * diff:+.2f} ± {100 * se:.2f} "
                                    f"points, {verdict} ('{other['who'].split(', ', 1)[1]}')",
                        "met": ours["wall"] < other["wall"] and acc_ok})
    pk = {r["k"]: r for r in res.get("vs_peak", [])}
    if cfg.flops_k in pk:
        r = pk[cfg.flops_k]
        out.append({"figure": f"training FLOP/s of peak, MLP, K = {cfg.flops_k}", "goal": f"≥ {GOALS['peak']:.0%}",
                    "measured": f"{r['of_peak']:.0%} of the machine's peak, {r['of_peak_at_threads']:.0%} of the "
                                f"peak at the {res['machine']['engine_threads']} thread(s) it ran on "
                                f"({r['of_one_thread_cpu']:.0%} per CPU second)",
                    "met": r["of_peak"] >= GOALS["peak"]})
    if "memorization" in res:
        r = res["memorization"]
        out.append({"figure": f"memorization scores, {r['models']} models", "goal": "< 300 s",
                    "measured": f"{r['wall']:.0f} s", "met": r["wall"] < GOALS["memorization_s"]})
    if "realdata" in res:
        for r in res["realdata"]["startup"]:
            out.append({"figure": f"`{r['command']}`", "goal": "< 1.5 s (median of runs)",
                        "measured": f"{r['median_s']:.2f} s", "met": r["median_s"] < 1.5})
        s = res["realdata"]["standardization"]
        ours, theirs = s["rotelab, standardized (default)"]["test_acc"], \
            s["scikit-learn, StandardScaler + MLPClassifier"]["test_acc"]
        out.append({"figure": "breast_cancer CSV test accuracy vs scikit-learn's scaled MLP", "goal": "within 2 points",
                    "measured": f"{100 * ours:.1f}% vs {100 * theirs:.1f}%", "met": abs(ours - theirs) <= 0.02})
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    ap.add_argument("--parts", default="1,2,3,4,5,6", help="which parts to run, e.g. 1,3 (3 needs 1)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads for every engine job and baseline (default: the engine's choice at the start)")
    ap.add_argument("--loop-max", type=int, default=0,
                    help="measure at most N models of the per-model loop (more are extrapolated; default: "
                         "the config's 256 mlp, 64 cnn)")
    ap.add_argument("--out", default=str(Path(__file__).parent), help="folder for results.md and results.json")
    a = ap.parse_args(argv)
    cfg = parts.QUICK if a.quick else parts.FULL
    if a.loop_max > 0:
        cfg = replace(cfg, loop_max=tuple((name, min(n, a.loop_max)) for name, n in cfg.loop_max))
    want = {int(p) for p in a.parts.split(",") if p.strip()}
    device = resolve_device(a.device)
    # One thread count for the whole run, so that each comparison runs both sides alike: the
    # engine's own choice (cores nobody else is using) once, at the start, unless given.
    n_threads = a.threads or (cpu_threads() if device.type == "cpu" else torch.get_num_threads())
    if device.type == "cpu" and not a.threads and n_threads < torch.get_num_threads():
        log(f"note: other processes are using this machine (load {load():.2f}), so every part runs on "
            f"{n_threads} of {torch.get_num_threads()} threads; for the figures of an idle machine, rerun "
            f"when the 1-minute load is below 0.1, or pass --threads {torch.get_num_threads()}")
    env_before = os.environ.get("ROTELAB_THREADS")
    os.environ["ROTELAB_THREADS"] = str(n_threads)
    try:
        return _run(a, cfg, want, device, n_threads)
    finally:
        if env_before is None:
            os.environ.pop("ROTELAB_THREADS", None)
        else:
            os.environ["ROTELAB_THREADS"] = env_before


def _run(a, cfg: parts.Config, want: set[int], device: torch.device, n_threads: int) -> dict:
    res: dict = {"quick": a.quick, "config": cfg.__dict__, "machine": machine(device, n_threads)}
    m = res["machine"]
    log(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, torch threads {m['torch_threads']}, "
        f"engine threads {m['engine_threads']}, device {m['device']}, load {m['load_at_start']}")
    warm_up(device)
    if 3 in want or 1 in want:
        res["peak"] = matmul_peak(device, n_threads, reps=3 if a.quick else 8)
        log(f"matmul peak {res['peak']['peak_flops'] / 1e9:.0f} GFLOP/s")
    if 1 in want or 3 in want:
        log("part 1: vectorized vs loop")
        res["vs_loop"] = parts.vs_loop(cfg, device, n_threads, log)
    if 2 in want:
        log("part 2: 5-fold CV vs scikit-learn")
        res["vs_sklearn"] = parts.vs_sklearn(cfg, device, n_threads, log)
    if 3 in want:
        res["vs_peak"] = parts.vs_peak(res["vs_loop"], res["peak"], n_threads)
    if 4 in want:
        log("part 4: memorization scores")
        res["memorization"] = parts.memorization(cfg, device, log)
    if 5 in want:
        log("part 5: start-up and a tabular CSV")
        res["realdata"] = {"startup": realdata.startup(runs=2 if a.quick else 5),
                           "standardization": realdata.standardization(seeds=1 if a.quick else 3,
                                                                       sklearn_seeds=1 if a.quick else 5)}
    if 6 in want:
        log("part 6: bf16 against fp32")
        res["precision"] = precision.run(str(device), repeats=1 if a.quick else 2, folds=2 if a.quick else 5,
                                         epochs=2 if a.quick else None)
    res["load_at_end"] = round(load(), 2)
    res["goals"] = goals(res, cfg)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    md = report(res)
    (out / "results.md").write_text(md)
    (out / "results.json").write_text(json.dumps(res, indent=1, default=str))
    print(md)
    return res


if __name__ == "__main__":
    main()
