"""``python -m bench.rmia [--quick] [--out DIR]``: membership inference by number of reference models.

Loss, LiRA online/offline and RMIA online/offline on the memorization study's subset models
(every model the target in turn), each (target, example) pair scored with only N reference
models drawn by :func:`rotelab.measures.membership.reference_order`; every attack gets the
same draw. The paper's claim (Zarifzadeh et al. 2024): RMIA stays strong with 1-4 reference
models, where LiRA offline falls towards chance. Goal: RMIA offline >= LiRA offline at N <= 4.

RMIA's offline coefficient ``a`` is chosen once, on the first setting (MNIST-1D), by AUC at
N = 4 averaged over the draws, and then used unchanged for the other setting.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rotelab.measures.membership import attack_roc, lira_scores, loss_attack_scores
from rotelab.measures.rmia import rmia_scores

from bench.machine import machine, write_results
from bench.subset_models import SubsetRun, train_subset_models

ATTACKS = ("loss", "lira_online", "lira_offline", "rmia_offline", "rmia_online", "rmia_offline_fraction")
LABELS = {"loss": "loss", "lira_online": "LiRA online", "lira_offline": "LiRA offline",
          "rmia_offline": "RMIA offline", "rmia_online": "RMIA online",
          "rmia_offline_fraction": "RMIA offline, paper's fraction (no tie-break)"}
METRICS = ("auc", "tpr_at_0_1pct", "tpr_at_1pct")


@dataclass(frozen=True)
class Config:
    settings: tuple[SubsetRun, ...] = (SubsetRun("mnist1d", 0.0, 0, 256), SubsetRun("digits", 0.1, 0, 128))
    ns: tuple[int | None, ...] = (1, 2, 4, 8, 64, None)  # None: every other model
    draws: int = 3  # reference draws averaged (rng seeds 0, 1, ...)
    a_grid: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    a_at: int = 4  # N at which a is chosen


FULL = Config()
QUICK = Config(settings=(SubsetRun("mnist1d", 0.0, 0, 16, epochs=3), SubsetRun("digits", 0.1, 0, 16, epochs=3)),
               ns=(1, 2, None), draws=1, a_grid=(0.0, 0.3), a_at=2)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _data(run: SubsetRun) -> dict[str, np.ndarray]:
    ds, out = train_subset_models(run, log=log)
    p = ds.n_train
    margin = out["margin"].astype(np.float64)
    margin = np.nan_to_num(margin, nan=0.0, posinf=1e6, neginf=-1e6)  # as the study keeps them finite
    return {"margin": margin[:, :p], "population": margin[:, p:], "mask": out["train_mask"]}


def _scores(d: dict, attack: str, n: int | None, seed: int, a: float) -> np.ndarray:
    """One attack's scores (n_models, n_samples) with the draw ``seed`` of N references."""
    kw = {} if n is None else {"n_reference": n, "rng": np.random.default_rng(seed)}
    m, mask, pop = d["margin"], d["mask"], d["population"]
    if attack == "loss":
        return loss_attack_scores(np.logaddexp(0.0, -m))  # -log p_y in float64, as the study
    if attack.startswith("lira"):
        return lira_scores(m, mask, variant=attack.split("_")[1], **kw)
    variant = "online" if attack == "rmia_online" else "offline"
    return rmia_scores(m, mask, pop, variant=variant, a=a, tie_break=attack != "rmia_offline_fraction", **kw)


def _measure(d: dict, attack: str, n: int | None, draws: int, a: float) -> dict | None:
    """Mean ROC figures over the reference draws; None where the attack cannot run with N."""
    if attack in ("lira_online", "rmia_online") and n is not None and n < 2:
        return None
    seeds = range(1 if (n is None or attack == "loss") else draws)
    rocs = [attack_roc(_scores(d, attack, n, s, a), d["mask"]) for s in seeds]
    return {k: float(np.mean([getattr(r, k) for r in rocs])) for k in METRICS}


def choose_a(d: dict, cfg: Config) -> tuple[float, list[dict]]:
    """The a with the best mean AUC of RMIA offline at N = ``cfg.a_at``."""
    rows = [{"a": a, **_measure(d, "rmia_offline", cfg.a_at, cfg.draws, a)} for a in cfg.a_grid]
    return max(rows, key=lambda r: r["auc"])["a"], rows


def run(cfg: Config) -> dict:
    res: dict = {"settings": [], "a_sweep": None, "a": None}
    for k, setting in enumerate(cfg.settings):
        t0 = time.perf_counter()
        d = _data(setting)
        if k == 0:
            res["a"], res["a_sweep"] = choose_a(d, cfg)
            log(f"  a = {res['a']} (chosen on {setting.data})")
        rows = []
        for n in cfg.ns:
            for attack in ATTACKS:
                m = _measure(d, attack, n, cfg.draws, res["a"])
                rows.append({"n": n, "attack": attack, **(m or {})})
            log(f"  {setting.data}: N = {n or 'all'} done ({time.perf_counter() - t0:.0f} s)")
        res["settings"].append({"run": setting.__dict__, "rows": rows, "n_models": int(d["mask"].shape[0]),
                                "n_train": int(d["mask"].shape[1]), "n_population": int(d["population"].shape[1]),
                                "seconds": time.perf_counter() - t0})
    res["goals"] = goals(res)
    return res


def goals(res: dict) -> list[dict]:
    """RMIA offline >= LiRA offline at N <= 4, per setting and metric."""
    out = []
    for s in res["settings"]:
        by = {(r["n"], r["attack"]): r for r in s["rows"]}
        for n in sorted(n for n in {r["n"] for r in s["rows"]} if n is not None and n <= 4):
            for metric in METRICS:
                ours, theirs = by[(n, "rmia_offline")][metric], by[(n, "lira_offline")][metric]
                out.append({"data": s["run"]["data"], "n": n, "metric": metric, "rmia": ours, "lira": theirs,
                            "met": ours >= theirs})
    return out


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def report(res: dict, info: dict) -> str:
    lines = ["# RMIA vs LiRA vs the loss attack, by number of reference models\n",
             f"{info['date']} · {info['cpu']} · torch {info['torch']} · commit {info['git_commit'] or '?'} · "
             f"`python -m bench.rmia`\n",
             "Subset models of the memorization study's recipe (mlp, 100 epochs, Adam lr 1e-2, cosine, batch 100, "
             "each on a random 70% of the training pool, seed 0); every model the target in turn, the others its "
             "references. With N, each (target, example) pair is scored with N references drawn by "
             "`reference_order` (offline: N that did not train on the example; online: ⌈N/2⌉ that did not and "
             "⌊N/2⌋ that did), the same draw for every attack; figures are means over "
             f"{res['draws']} draws (N = all: one). RMIA's population samples z are the test split. "
             "TPR at 0.1% / 1% FPR and AUC pooled over every (target, example) pair, in percent.\n",
             f"RMIA's offline a = **{res['a']}**, chosen on MNIST-1D (first setting) by mean AUC at N = "
             f"{res['a_at']}: " + ", ".join(f"a = {r['a']}: {100 * r['auc']:.1f}" for r in res["a_sweep"])
             + "; used unchanged on digits.\n"]
    add = lines.append
    for s in res["settings"]:
        r0 = s["run"]
        noise = f", {r0['label_noise']:.0%} flipped labels" if r0["label_noise"] else ""
        add(f"## {r0['data']}{noise}: {s['n_models']} models, {s['n_train']} training examples, "
            f"{s['n_population']} population samples\n")
        ns = list(dict.fromkeys(r["n"] for r in s["rows"]))
        add("| attack | " + " | ".join(f"N = {n or 'all'}" for n in ns) + " |")
        add("|---|" + "---|" * len(ns))
        by = {(r["n"], r["attack"]): r for r in s["rows"]}
        for attack in ATTACKS:
            cells = []
            for n in ns:
                r = by[(n, attack)]
                cells.append("–" if "auc" not in r else
                             f"{_pct(r['tpr_at_0_1pct'])} / {_pct(r['tpr_at_1pct'])} / {_pct(r['auc'])}")
            add(f"| {LABELS[attack]} | " + " | ".join(cells) + " |")
        add("\nEach cell: TPR at 0.1% FPR / TPR at 1% FPR / AUC.\n")
    add("## Against the goal: RMIA offline ≥ LiRA offline at N ≤ 4\n")
    add("| data | N | metric | RMIA offline | LiRA offline | met |")
    add("|---|---|---|---|---|---|")
    for g in res["goals"]:
        add(f"| {g['data']} | {g['n']} | {g['metric']} | {_pct(g['rmia'])} | {_pct(g['lira'])} | "
            f"{'✓' if g['met'] else '✗'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.rmia", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: numbers mean nothing")
    ap.add_argument("--out", default=str(Path(__file__).parent), help="where results_rmia.{md,json} go")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    info = machine(torch.device("cpu"), torch.get_num_threads())
    res = run(cfg)
    res.update({"draws": cfg.draws, "a_at": cfg.a_at, "quick": args.quick, "machine": info})
    write_results(args.out, "results_rmia", res, report(res, info), quick=args.quick)


if __name__ == "__main__":
    main()
