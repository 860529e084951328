"""CIFAR-shaped benchmark: K members at once vs the best per-model loop, on 3x32x32 images.

``python -m bench.cifar_shaped [--device cpu|cuda|auto] [--size cpu|gpu|quick] [--ks 1,8,16,64]
[--models cnn,resnet,convbn] [--precision fp32|bf16] [--digits EPOCHS] [--out DIR]``

Synthetic data (no CIFAR files are on the project's machines): 10 classes, each a smooth random
colour template plus noise, so the models have something to learn. Rates are model-epochs per
second (higher is better): K models x epochs over the wall time of the whole job (setup,
training, the final evaluation of every example). The alternative is what a user writes: one
``nn.Module`` + fused AdamW per model, trained in turn, data on the device, then its outputs on
every example; the "best loop" is the faster of
its versions at the same batch size: fp32, fp32 with channels_last tensors (1.3-1.5x faster than
the default layout on this project's CPU), and on CUDA bf16 autocast + channels_last. The
ceiling: one model's images per second at 16x the batch over its rate at the batch, i.e. what
16 members at once could win at most if the engine were as fast as one big model.

``--digits E`` also trains ``resnet`` on digits upsampled to 32x32 for E epochs and reports its
test accuracy (the issue asks for >= 97%).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rotelab.data import Dataset, load_dataset, make_dataset
from rotelab.engine import Members, Recipe, train_job
from rotelab.engine.threads import cpu_threads
from rotelab.engine.train import resolve_device
from rotelab.errors import InvalidInputError
from rotelab.models import ModelSpec, build_model

from bench.machine import load, machine, sync, threads

PRECISIONS = ("fp32", "bf16")
#: Loop versions: name -> (bf16 autocast, channels_last).
LOOP_VERSIONS = {"fp32": (False, False), "fp32+cl": (False, True), "bf16+cl": (True, True)}


# ── sizes ────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Size:
    """One run's sizes. ``loop_max``: loop models measured per row (more are extrapolated:
    every model of a loop costs the same). ``ceiling_images``: images each side of the ceiling
    measurement sees (after one warm-up step)."""

    n_train: int
    n_test: int
    batch: int  # examples per step, per model
    epochs: int
    ks: tuple[int, ...]
    loop_max: int
    ceiling_images: int


SIZES = {
    "gpu": Size(n_train=10_000, n_test=1_000, batch=250, epochs=2, ks=(1, 8, 16, 64), loop_max=4,
                ceiling_images=16 * 250 * 8),
    "cpu": Size(n_train=400, n_test=100, batch=25, epochs=1, ks=(1, 4, 8), loop_max=2, ceiling_images=800),
    "quick": Size(n_train=64, n_test=16, batch=8, epochs=1, ks=(1, 2), loop_max=1, ceiling_images=128),
}


# ── data and models ──────────────────────────────────────────────────────────────────────
def cifar_like(n_train: int, n_test: int, *, seed: int = 0, n_classes: int = 10) -> Dataset:
    """Synthetic CIFAR-shaped images (3, 32, 32) in [0, 1]: class c is a smooth random colour
    template (4x4, upsampled) plus Gaussian noise of std 0.25 per pixel, so that a CNN has
    something to learn. Deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    templates = F.interpolate(torch.rand(n_classes, 3, 4, 4, generator=g), size=(32, 32), mode="bilinear",
                              align_corners=False)
    y = torch.arange(n_train + n_test) % n_classes
    y = y[torch.randperm(len(y), generator=g)]
    x = (templates[y] + 0.25 * torch.randn(len(y), 3, 32, 32, generator=g)).clamp(0, 1)
    x, y = x.numpy(), y.numpy()
    return make_dataset("cifar-like", x[:n_train], y[:n_train], x[n_train:], y[n_train:], kind="image",
                        classes=[str(c) for c in range(n_classes)])


def digits_32() -> Dataset:
    """scikit-learn's digits (1, 8, 8), upsampled to (1, 32, 32) (bilinear), same splits."""
    ds = load_dataset("digits")

    def up(a: np.ndarray) -> np.ndarray:
        return F.interpolate(torch.from_numpy(a), size=(32, 32), mode="bilinear", align_corners=False).numpy()

    return make_dataset("digits-32", up(ds.x_train), ds.y_train, up(ds.x_test), ds.y_test, kind="image")


def conv_net(widths: Sequence[int] = (64, 128, 256), *, batch_norm: bool = True, n_classes: int = 10) -> nn.Module:
    """A user's CIFAR CNN: per width a 3x3 conv (+ BatchNorm), ReLU and 2x2 max-pool; then one Linear.
    (B, 3, 32, 32) -> (B, n_classes). 64-128-256 with BatchNorm: 412,234 parameters."""
    layers: list[nn.Module] = []
    c, side = 3, 32
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=not batch_norm), *([nn.BatchNorm2d(w)] if batch_norm else []),
                   nn.ReLU(), nn.MaxPool2d(2)]
        c, side = w, side // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * side * side, n_classes))


def builtin_factories(shape: tuple[int, ...] = (3, 32, 32), n_classes: int = 10) -> dict[str, Callable[[], nn.Module]]:
    """The benchmark's models: the built-in ``cnn`` and ``resnet`` at their defaults, and a user's
    64-128-256 conv net with BatchNorm (``convbn``) passed as a factory, as a user would."""
    cnn, res = ModelSpec("cnn").resolved(), ModelSpec("resnet").resolved()
    return {"cnn": lambda: build_model(cnn, shape, n_classes), "resnet": lambda: build_model(res, shape, n_classes),
            "convbn": lambda: conv_net(n_classes=n_classes)}


# ── the per-model loop ───────────────────────────────────────────────────────────────────
def loop_seconds(factory: Callable[[], nn.Module], ds: Dataset, *, size: Size, device: torch.device,
                 version: str, models: int) -> dict:
    """Train ``models`` models one after another, as a user writes it, each ending with its output
    on every example (train and test, as the engine's job does); seconds per model and the mean
    test accuracy. ``version`` (``LOOP_VERSIONS``): bf16 = autocast around forward and loss (fp32
    master weights and AdamW state); cl = channels_last model and inputs."""
    bf16, cl = LOOP_VERSIONS[version]
    fmt = torch.channels_last if cl else torch.contiguous_format
    xt = torch.as_tensor(ds.x_train, device=device).contiguous(memory_format=fmt)
    yt = torch.as_tensor(ds.y_train, device=device)
    y_test = torch.as_tensor(ds.y_test, device=device)
    x_all = torch.cat([xt, torch.as_tensor(ds.x_test, device=device).contiguous(memory_format=fmt)])
    steps, accs = -(-ds.n_train // size.batch), []
    sync(device)
    t0 = time.perf_counter()
    for seed in range(models):
        torch.manual_seed(seed)
        model = factory().to(device, memory_format=fmt)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0, fused=True)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=size.epochs * steps)
        for _ in range(size.epochs):
            perm = torch.randperm(ds.n_train, device=device)
            for s in range(0, ds.n_train, size.batch):
                i = perm[s: s + size.batch]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = F.cross_entropy(model(xt[i]), yt[i])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        model.eval()  # every example's output, as the engine gives for a memorization study
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = torch.cat([model(x_all[s: s + 1000]).argmax(1) for s in range(0, len(x_all), 1000)])
        accs.append((pred[ds.n_train:] == y_test).float().mean().item())
    sync(device)
    return {"seconds_per_model": (time.perf_counter() - t0) / models, "acc": float(np.mean(accs)),
            "models_measured": models}


def loop_versions(device: torch.device) -> tuple[str, ...]:
    """The loop versions a user would try: bf16 + channels_last only where it can pay (CUDA)."""
    return tuple(LOOP_VERSIONS) if device.type == "cuda" else ("fp32", "fp32+cl")


# ── the engine ───────────────────────────────────────────────────────────────────────────
def engine_seconds(factory: Callable[[], nn.Module], ds: Dataset, *, k: int, size: Size, device: torch.device,
                   precision: str) -> dict:
    """One job of k members, each on the whole training split with its own shuffle; wall seconds,
    mean test accuracy, and whether it ran K-at-once."""
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    train = np.zeros((k, len(y)), bool)
    train[:, : ds.n_train] = True
    test = ~train[0]
    recipe = Recipe(epochs=size.epochs, batch_size=size.batch, eval_every=0, precision=precision)
    sync(device)
    t0 = time.perf_counter()
    out = train_job(factory, x, y, members=Members(np.arange(k), train, np.zeros_like(train)), test_mask=test,
                    recipe=recipe, n_classes=ds.n_classes, kind="image", device=device, outputs=("correct",))
    sync(device)
    return {"seconds": time.perf_counter() - t0, "acc": float(out["correct"][:, test].mean()),
            "vectorized": bool(out["vectorized"]), "precision": precision}


# ── the ceiling ──────────────────────────────────────────────────────────────────────────
def images_per_second(factory: Callable[[], nn.Module], *, batch: int, images: int, device: torch.device,
                      version: str) -> float:
    """One model's training rate at ``batch`` (forward, backward, AdamW step), over ``images``
    random images after one warm-up step."""
    bf16, cl = LOOP_VERSIONS[version]
    fmt = torch.channels_last if cl else torch.contiguous_format
    torch.manual_seed(0)
    model = factory().to(device, memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x = torch.rand(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    steps = max(1, images // batch)
    for i in range(steps + 1):
        if i == 1:  # the first step picks kernels and allocates: not timed
            sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return steps * batch / (time.perf_counter() - t0)


def ceiling(factory: Callable[[], nn.Module], *, size: Size, device: torch.device) -> dict:
    """Images/s at 16x the batch over images/s at the batch, per loop version."""
    out = {}
    for v in loop_versions(device):
        small = images_per_second(factory, batch=size.batch, images=size.ceiling_images, device=device, version=v)
        big = images_per_second(factory, batch=16 * size.batch, images=size.ceiling_images, device=device, version=v)
        out[v] = {"images_per_s": small, "images_per_s_16x": big, "ratio": big / small}
    return out


# ── the run ──────────────────────────────────────────────────────────────────────────────
def _engine_row(name: str, factory, ds: Dataset, k: int, size: Size, device: torch.device, precision: str,
                repeats: int) -> dict:
    """The engine's rate at K = k: the best of ``repeats`` jobs (a shared machine only slows a run down)."""
    try:
        runs = [engine_seconds(factory, ds, k=k, size=size, device=device, precision=precision)
                for _ in range(repeats)]
    except torch.OutOfMemoryError:  # the GPU run goes as far as memory allows
        torch.cuda.empty_cache()
        return {"model": name, "k": k, "error": "out of memory"}
    e = min(runs, key=lambda r: r["seconds"])
    return {"model": name, "k": k, "engine_seconds": e["seconds"], "engine_rate": k * size.epochs / e["seconds"],
            "engine_seconds_all": [r["seconds"] for r in runs], "engine_acc": e["acc"], "vectorized": e["vectorized"],
            "engine_precision": e["precision"]}


def _loops(name: str, factory, ds: Dataset, size: Size, device: torch.device, repeats: int, log) -> dict:
    """Each loop version's best of ``repeats`` runs (version -> loop_seconds' dict)."""
    out = {}
    for v in loop_versions(device):
        log(f"  {name}: loop of {size.loop_max} model(s), {v}, {repeats} time(s) (load {load():.1f})")
        runs = [loop_seconds(factory, ds, size=size, device=device, version=v, models=size.loop_max)
                for _ in range(repeats)]
        out[v] = min(runs, key=lambda r: r["seconds_per_model"])
    return out


def _warm_up(factory: Callable[[], nn.Module], size: Size, device: torch.device) -> None:
    """Pay one-time costs before any timer runs: the first fused optimizer imports torch._dynamo
    (seconds), and the first call of each kernel shape picks its code path."""
    tiny = replace(size, n_train=size.batch, epochs=1)
    ds = cifar_like(size.batch, 2, seed=1)
    for v in loop_versions(device):
        loop_seconds(factory, ds, size=tiny, device=device, version=v, models=1)
    engine_seconds(factory, ds, k=1, size=tiny, device=device, precision="fp32")


def run(device: str | torch.device = "auto", *, size: Size | None = None,
        models: dict[str, Callable[[], nn.Module]] | None = None, precision: str = "fp32",
        ks: Sequence[int] | None = None, repeats: int = 1, log: Callable[[str], None] = lambda msg: None
        ) -> list[dict]:
    """Engine vs best loop for every model and K, plus each model's ceiling; one row per (model, K).

    ``models``: name -> zero-argument factory of a (B, 3, 32, 32) -> (B, 10) module (default:
    ``builtin_factories()``); ``size``: ``SIZES["gpu"]`` on CUDA, else ``SIZES["cpu"]``;
    ``precision``: the engine's recipe precision (fp32 or bf16); ``repeats``: each loop and engine job is timed that many times,
    interleaved by model, and the best counts. Rates in model-epochs per second; ``ratio`` = engine /
    best loop.
    """
    dev = resolve_device(device)
    if precision not in PRECISIONS:
        raise InvalidInputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    size = size or SIZES["gpu" if dev.type == "cuda" else "cpu"]
    if ks is not None:
        size = replace(size, ks=tuple(ks))
    models = builtin_factories() if models is None else models
    ds = cifar_like(size.n_train, size.n_test)
    rows = []
    for name, factory in models.items():
        _warm_up(factory, size, dev)
        loops = _loops(name, factory, ds, size, dev, repeats, log)
        best = max(loops, key=lambda p: 1 / loops[p]["seconds_per_model"])
        best_rate = size.epochs / loops[best]["seconds_per_model"]
        log(f"  {name}: ceiling (one model at 16x the batch) (load {load():.1f})")
        ceil = ceiling(factory, size=size, device=dev)
        for k in size.ks:
            log(f"  {name}: engine, K = {k} (load {load():.1f})")
            row = _engine_row(name, factory, ds, k, size, dev, precision, repeats)
            row.update({"n_train": size.n_train, "batch": size.batch, "epochs": size.epochs,
                        **{f"loop_rate_{p}": size.epochs / v["seconds_per_model"] for p, v in loops.items()},
                        "best_loop": best, "best_loop_rate": best_rate, "loop_acc": loops[best]["acc"],
                        **{f"ceiling_{p}": v["ratio"] for p, v in ceil.items()}})
            if "engine_rate" in row:
                row["ratio"] = row["engine_rate"] / best_rate
            rows.append(row)
    return rows


def digits_accuracy(device: str | torch.device = "auto", *, epochs: int = 20, k: int = 4, batch: int = 50,
                    lr: float = 1e-2) -> dict:
    """``resnet`` (defaults: ResNet-8, width 16) on digits upsampled to 32x32: k members, each on the
    whole training split with its own seed and shuffle; test accuracy per member and wall time."""
    dev = resolve_device(device)
    ds = digits_32()
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    train = np.zeros((k, len(y)), bool)
    train[:, : ds.n_train] = True
    spec = ModelSpec("resnet").resolved()
    sync(dev)
    t0 = time.perf_counter()
    out = train_job(lambda: build_model(spec, ds.feature_shape, ds.n_classes), x, y,
                    members=Members(np.arange(k), train, np.zeros_like(train)), test_mask=~train[0],
                    recipe=Recipe(model=spec, epochs=epochs, batch_size=batch, lr=lr, eval_every=0),
                    n_classes=ds.n_classes, kind="image", device=dev, outputs=("correct",))
    sync(dev)
    acc = out["correct"][:, ~train[0]].mean(1)
    return {"model": str(spec), "k": k, "epochs": epochs, "batch": batch, "lr": lr, "n_train": ds.n_train,
            "n_test": ds.n_test, "acc_mean": float(acc.mean()), "acc_min": float(acc.min()),
            "acc": acc.tolist(), "seconds": time.perf_counter() - t0, "vectorized": bool(out["vectorized"])}


# ── output ───────────────────────────────────────────────────────────────────────────────
def _f(v, spec: str = ".2f", unit: str = "") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec) + unit


def _row(r: dict) -> str:
    if "error" in r:
        return f"| {r['model']} | {r['k']} | {r['error']} | | | | | | |"
    return (f"| {r['model']} | {r['k']} | {_f(r['engine_rate'])} ({r['engine_precision']}) "
            f"| {_f(r['best_loop_rate'])} ({r['best_loop']}) | **{_f(r['ratio'], unit='×')}** "
            f"| {' / '.join(_f(r.get(f'loop_rate_{v}')) for v in LOOP_VERSIONS)} "
            f"| {' / '.join(_f(r.get(f'ceiling_{v}'), unit='×') for v in LOOP_VERSIONS)} | {100 * r['engine_acc']:.0f}% / {100 * r['loop_acc']:.0f}% "
            f"| {'yes' if r['vectorized'] else 'no'} |")


def report(res: dict) -> str:
    """results.md text: the machine, then one table row per (model, K), then the digits run."""
    m, s = res["machine"], res["size"]
    gpu = f" ({m['gpu']})" if m["gpu"] else ""
    lines = ["# CIFAR-shaped benchmark (synthetic 3x32x32, 10 classes)\n",
             f"{m['date']} · {m['cpu']} · {m['cores']} cores · torch {m['torch']} · device {m['device']}{gpu} "
             f"· threads {m['engine_threads']} · load {m['load_at_start']} at start, {res['load_at_end']} at end "
             f"· commit {m['git_commit'] or '?'}\n",
             f"{s['n_train']} training images, batch {s['batch']}, {s['epochs']} epoch(s); loop: {s['loop_max']} "
             f"model(s) measured per version; best of {res.get('repeats', 1)} timing(s) of every loop and job. "
             "Rates in model-epochs/s (higher is better), whole jobs; engine "
             f"precision {res['precision']} (asked); ceiling = one model's images/s at 16x the batch over its "
             "rate at the batch.\n",
             "| model | K | engine | best loop (version) | engine / best loop | loop fp32 / fp32+cl / bf16+cl "
             "| ceiling fp32 / fp32+cl / bf16+cl | acc engine / loop | K-at-once |",
             "|---|---|---|---|---|---|---|---|---|",
             *[_row(r) for r in res["rows"]]]
    d = res.get("digits")
    if d:
        lines.append(f"\n**resnet on digits upsampled to 32x32** ({d['model']}): {d['k']} members, {d['epochs']} "
                     f"epochs, batch {d['batch']}, Adam lr {d['lr']}, cosine; {d['n_train']} training / "
                     f"{d['n_test']} test images: test accuracy {100 * d['acc_mean']:.1f}% mean, "
                     f"{100 * d['acc_min']:.1f}% worst member; {d['seconds'] / 60:.1f} min for the job.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.cifar_shaped", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", choices=tuple(SIZES), default=None, help="default: gpu on CUDA, else cpu")
    ap.add_argument("--ks", default="", help="members at once, e.g. 1,8,16,64 (default: the size's)")
    ap.add_argument("--models", default="cnn,resnet,convbn", help="'' for none (e.g. only --digits)")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32", help="the engine's (loops try both on CUDA)")
    ap.add_argument("--repeats", type=int, default=1, help="time each loop and job N times, keep the best")
    ap.add_argument("--digits", type=int, default=0, help="also train resnet on digits-32 for N epochs")
    ap.add_argument("--out", default=str(Path(__file__).parent))
    a = ap.parse_args(argv)
    dev = resolve_device(a.device)
    size = SIZES[a.size or ("gpu" if dev.type == "cuda" else "cpu")]
    ks = [int(v) for v in a.ks.split(",") if v.strip()] or None
    factories = builtin_factories()
    chosen = {n: factories[n] for n in a.models.split(",") if n.strip()}
    n_threads = cpu_threads() if dev.type == "cpu" else torch.get_num_threads()
    res = {"machine": machine(dev, n_threads), "size": asdict(size), "precision": a.precision, "repeats": a.repeats}

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(f"cifar-shaped on {dev}, {n_threads} thread(s), size {asdict(size)}")
    with threads(n_threads):  # loops and engine jobs alike (as bench/parts.py)
        res["rows"] = run(dev, size=size, models=chosen, precision=a.precision, ks=ks, repeats=a.repeats, log=log)
        if a.digits:
            log(f"  resnet on digits-32, {a.digits} epochs (load {load():.1f})")
            res["digits"] = digits_accuracy(dev, epochs=a.digits)
    res["load_at_end"] = round(load(), 2)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "cuda" if dev.type == "cuda" else "cpu"
    md = report(res)
    (out / f"cifar_shaped_{tag}.md").write_text(md)
    (out / f"cifar_shaped_{tag}.json").write_text(json.dumps(res, indent=1, default=str))
    print(md)
    return res


if __name__ == "__main__":
    main()
