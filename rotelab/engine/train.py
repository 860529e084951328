"""Train the K members of a job at once and record what each does on every example.

Shapes: ``x`` (N, *feature_shape) holds every example a study looks at (training pool,
then test split); ``train_mask``/``val_mask`` (K, N) bool say which examples member k
trains on and validates on; ``test_mask`` (N,) marks the test split ("new data").
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rotelab.engine.members import LoopMembers, StackedMembers, make_members
from rotelab.engine.recipe import Recipe
from rotelab.errors import InvalidInputError

# Per-epoch curves recorded for every member, each (K, n_recorded_epochs).
CURVES = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
# Final per-example outputs, each (K, N).
OUTPUTS = ("loss", "confidence", "margin", "pred", "correct")
# Extra outputs a caller may ask for: "probs", every class's probability (K, N, C) as float16.
EXTRA_OUTPUTS = ("probs",)


@dataclass(frozen=True)
class Members:
    """Who trains: one seed and one pair of masks per member."""

    seeds: np.ndarray  # (K,) int
    train_mask: np.ndarray  # (K, N) bool
    val_mask: np.ndarray  # (K, N) bool

    @property
    def k(self) -> int:
        return len(self.seeds)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _batch_plan(members: Members, rng: list[np.random.Generator], batch_size: int):
    """Each member's own shuffled pass over its training examples, padded to a common length.

    Returns idx (K, n_max) int64 and weight (K, n_max) float32; padding repeats the member's
    own examples with weight 0, so mixing partners never come from outside its subset.
    """
    k = members.k
    own = [np.flatnonzero(members.train_mask[i]) for i in range(k)]
    n_max = max(len(o) for o in own)
    n_max = int(np.ceil(n_max / batch_size) * batch_size) if n_max > batch_size else n_max
    idx = np.empty((k, n_max), dtype=np.int64)
    w = np.zeros((k, n_max), dtype=np.float32)
    for i, o in enumerate(own):
        perm = rng[i].permutation(o)
        idx[i, : len(o)] = perm
        w[i, : len(o)] = 1.0
        if n_max > len(o):
            idx[i, len(o) :] = rng[i].choice(o, size=n_max - len(o))
    return idx, w


# cpu_threads' last look: wall time, our CPU time, our share of the 1-minute load average; it
# starts as if this process had been busy since it began (a fresh one has been importing)
_own = [time.perf_counter() - time.process_time(), 0.0, 0.0]


def _others_running() -> int:
    """Runnable tasks on the machine right now that are not threads of this process."""
    with open("/proc/loadavg") as f:  # "2.81 3.01 4.33 3/90 19016": 3 runnable
        total = int(f.read().split()[3].split("/")[0])
    ours = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                ours += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except OSError:  # the thread just ended
            pass
    return total - ours


def cpu_threads(step_flops: float | None = None, *, want: int | None = None) -> int:
    """Intra-op threads for a CPU job: torch's setting, less the cores other processes keep busy.

    Why: a training step is ~50 small kernels (a 64-member MLP step: each ≤ 1.5 ms), and
    every OpenMP kernel ends at a barrier that waits for all its threads. When another
    process runs on one of our cores, our thread there is descheduled and each barrier
    waits a scheduler slice for it while the others spin: measured on a 2-core machine
    with one other busy process, a 5-epoch 64-member MLP job took 51 s on 2 threads vs
    3.7 s on 1; on the idle machine 2 threads took 2.6 s. Others = the mean number of
    runnable tasks of other processes over 20 ms (/proc), looked at for 200 ms more when the
    1-minute load average less our own (our CPU use, averaged the way the kernel averages
    the load) says the machine was busy. Not the load average itself: it remembers a process
    that ended a minute ago, and made the next job run on one thread of two.
    ``want`` is the most to use (default: torch's setting); ``ROTELAB_THREADS`` overrides
    the count. A step under 20 MFLOP (``step_flops``) runs on one thread whatever the count:
    a second only adds waits (a 1-member MLP job: 0.5 s on one thread, 0.7 s on two).
    Results do not depend on the thread count (checked bit for bit for mlp and cnn), so this
    only changes speed.
    """
    if step_flops is not None and step_flops < 2e7:
        return 1
    env = os.environ.get("ROTELAB_THREADS", "").strip()
    if env.isdigit():
        return max(1, int(env))
    wall, cpu = time.perf_counter(), time.process_time()
    decay = math.exp(-(wall - _own[0]) / 60.0)
    _own[:] = wall, cpu, _own[2] * decay + (1 - decay) * (cpu - _own[1]) / max(wall - _own[0], 1e-3)
    want = want or torch.get_num_threads()
    if want <= 1:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    avg_others = os.getloadavg()[0] - _own[2] if hasattr(os, "getloadavg") else 0.0
    try:
        others = _others_busy(0.02)
        if others < 0.1 and avg_others >= 0.1:  # the load average remembers the last minute: a
            others = _others_busy(0.2)  # process that has ended, or one that runs in bursts? Look longer
    except (OSError, ValueError, IndexError):  # no /proc (macOS): the load average alone
        others = avg_others
    # a core counts as taken as soon as others use a tenth of it: a wrong guess costs ~1.4x
    # one way and ~14x the other
    return max(1, min(want, cores - math.ceil(others - 0.1)))


def _others_busy(seconds: float) -> float:
    """Mean number of other processes' runnable tasks, read every ~2 ms for ``seconds``."""
    reads, end = [], time.perf_counter() + seconds
    while True:
        reads.append(_others_running())
        if time.perf_counter() >= end:
            return sum(reads) / len(reads)
        time.sleep(0.002)


@functools.cache
def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): leave the allocator alone
        return None


@contextlib.contextmanager
def reuse_freed_memory():
    """During a CPU job, keep freed memory in the process for the next step.

    Why: every step allocates and frees the same activations. glibc serves blocks over its
    mmap threshold (128 kB, self-raising to at most 32 MB) with fresh mmaps and trims freed
    heap, so each step page-faults them back in: ~1000 faults per step of a 64-member MLP
    (~12% of its time), 220 000 per step of a 256-member digits cnn (5.5 vs 4.1 ms per member
    with no mmap). So: no mmap and no trimming while the job runs; afterwards glibc's defaults
    come back and the freed memory is handed back (malloc_trim). Only speed changes.
    """
    libc = _glibc()
    if libc is None:
        yield
        return
    mallopt, malloc_trim = libc
    mallopt(-4, 0)  # M_MMAP_MAX: every block from the heap
    mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GB of freed heap
    try:
        yield
    finally:
        mallopt(-4, 65536)
        mallopt(-1, 128 * 1024)
        malloc_trim(0)


def _cpu_settings(fn):
    """Run a CPU job under ``reuse_freed_memory()``, and restore torch's thread count afterwards
    (the job sets its own, ``cpu_threads``, once it knows its size)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if resolve_device(kwargs.get("device", "auto")).type != "cpu":
            return fn(*args, **kwargs)
        before = torch.get_num_threads()
        try:
            with reuse_freed_memory():
                return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities over the last (class) axis of logits (K, B, C).

    Why the transposes: on CPU, ATen's log_softmax over a last axis narrower than one SIMD
    vector (16 floats with AVX-512) takes a scalar path; at K=64, B=100, C=10 forward+backward
    took 1.6 ms, vs 0.37 ms over axis 1 of (K, C, B), which vectorizes over the batch. From
    C = 16 on, the plain call is the faster one. Same math, equal within float rounding.
    """
    if logits.device.type == "cpu" and logits.shape[-1] < 16:
        return torch.log_softmax(logits.transpose(-1, -2), dim=-2).transpose(-1, -2)
    return torch.log_softmax(logits, dim=-1)


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] for idx (K, B): index_select on the flat index is ~4x faster on CPU than advanced
    indexing (a (64, 100) batch of (1, 40) rows: 48 µs vs 195 µs), with the same values."""
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])


def _weight_params(named: Sequence[tuple[str, torch.Tensor]], stacked: bool) -> list[torch.Tensor]:
    """Weight matrices and kernels (not biases): what L1/L2 act on."""
    min_dim = 3 if stacked else 2
    return [p for _, p in named if p.dim() >= min_dim]


@torch.no_grad()
def evaluate(
    members: StackedMembers | LoopMembers, x: torch.Tensor, y: torch.Tensor, *, chunk: int | None = None,
    outputs: Sequence[str] = OUTPUTS,
) -> dict[str, torch.Tensor]:
    """Every member on every example, in eval mode: loss, confidence in the given label,
    logit-scaled confidence (margin), predicted label and correctness, each (K, N); only the
    ``outputs`` asked for (the per-epoch curves need loss and correctness alone)."""
    members.train(False)
    # On the CPU ~4k member-rows per chunk keeps activations in cache: 2^18 rows made each
    # elementwise pass stream 100 MB (K=64: MLP eval 0.29 s vs 0.54 s, digits cnn 1.3 s vs 4.4 s).
    # A GPU wants few, large launches instead: 2^18 member-rows per chunk.
    rows = 4096 if x.device.type == "cpu" else 1 << 18
    chunk = chunk or max(32, rows // max(members.k, 1))
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in outputs}
    for start in range(0, len(x), chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        logits = members.forward_shared(xb).float()  # (K, B, C)
        logp = log_softmax(logits)
        lp_y = logp.gather(-1, yb.expand(logits.shape[0], -1).unsqueeze(-1)).squeeze(-1)
        pred = logits.max(-1).indices  # = argmax (first of ties), 5x faster on CPU for few classes
        out = {"loss": lambda: -lp_y, "confidence": lp_y.exp, "pred": lambda: pred.to(torch.int16),
               "correct": lambda: pred == yb, "margin": lambda: lp_y - _log1m_p(logp, yb),
               "probs": lambda: logp.exp().to(torch.float16)}
        for name in outputs:
            parts[name].append(out[name]())
    return {k: torch.cat(v, dim=1) for k, v in parts.items()}


def _log1m_p(logp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log(1 - p_y) = logsumexp over the other classes, computed without cancellation."""
    return torch.logsumexp(logp.scatter(-1, y.expand(logp.shape[0], -1).unsqueeze(-1), float("-inf")), dim=-1)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    m = mask.float()
    total = (values.float() * m).sum(1)
    n = m.sum(1)
    out = torch.where(n > 0, total / n.clamp(min=1), torch.full_like(total, float("nan")))
    return out.cpu().numpy()


@_cpu_settings
def train_job(
    factory: Callable[[], nn.Module],
    x: np.ndarray,
    y: np.ndarray,
    *,
    members: Members,
    test_mask: np.ndarray,
    recipe: Recipe,
    n_classes: int,
    kind: str = "vector",
    device: str | torch.device = "auto",
    job_seed: int = 0,
    on_epoch: Callable[[int, int], None] | None = None,
    on_fallback: Callable[[str], None] | None = None,
    outputs: Sequence[str] = OUTPUTS,
) -> dict[str, np.ndarray]:
    """Train ``members.k`` models of ``factory`` under ``recipe`` at once.

    Returns numpy arrays: the curves in ``CURVES`` (K, E_rec) with ``epoch`` (E_rec,), the
    final per-example ``OUTPUTS`` (K, N), ``best_epoch`` and ``epochs_run`` (K,), and
    ``seconds`` and ``vectorized`` scalars. ``outputs`` picks the per-example outputs
    (``OUTPUTS`` and ``EXTRA_OUTPUTS``). With early stopping, the final outputs come
    from each member's best epoch (lowest validation loss), and every member needs validation
    examples. The global torch RNG is left as the caller had it.
    """
    dev = resolve_device(device)
    if recipe.early_stop > 0:
        empty = np.flatnonzero(~np.asarray(members.val_mask, dtype=bool).any(1))
        if len(empty):
            raise InvalidInputError(
                f"early stopping watches validation loss, but member {int(empty[0])} of this job has no "
                f"validation examples; give every member a validation set, or turn early stopping off")
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # the caller's RNG stays as it was
        return _train_job(factory, x, y, members=members, test_mask=test_mask, recipe=recipe, n_classes=n_classes,
                          kind=kind, dev=dev, job_seed=job_seed, on_epoch=on_epoch, on_fallback=on_fallback,
                          outputs=tuple(outputs))


def _train_job(factory, x, y, *, members: Members, test_mask, recipe: Recipe, n_classes: int, kind: str,
               dev: torch.device, job_seed: int, on_epoch, on_fallback, outputs) -> dict[str, np.ndarray]:
    t0 = time.perf_counter()
    want_threads = torch.get_num_threads()
    if dev.type == "cpu":  # setup is a few small kernels: one thread until the job knows its size
        torch.set_num_threads(1)
    xt = torch.as_tensor(x, dtype=torch.float32, device=dev)
    yt = torch.as_tensor(y, dtype=torch.int64, device=dev)
    train_m = torch.as_tensor(members.train_mask, device=dev)
    val_m = torch.as_tensor(members.val_mask, device=dev)
    test_m = torch.as_tensor(np.asarray(test_mask, dtype=bool), device=dev).expand(members.k, -1)

    net, reason = make_members(factory, members.seeds, dev, xt[:2])
    if dev.type == "cpu":  # ~6 FLOPs per weight and example (forward + backward): enough to size a step
        flops = 6 * recipe.batch_size * sum(p.numel() for _, p in net.named_parameters())
        torch.set_num_threads(cpu_threads(flops, want=want_threads))
    if reason is not None and on_fallback is not None:
        on_fallback(reason)
    k = net.k
    named = net.named_parameters()
    decay = _weight_params(named, net.vectorized)
    decay_ids = {id(p) for p in decay}
    rest = [p for _, p in named if id(p) not in decay_ids]
    groups = [{"params": decay, "weight_decay": recipe.l2}, {"params": rest, "weight_decay": 0.0}]
    if not recipe.l2:  # one group, one fused kernel launch per step instead of two: same update
        groups = [{"params": decay + rest, "weight_decay": 0.0}]
    # fused: one kernel per parameter tensor instead of ~10 passes over it (torch's CPU and
    # CUDA default is the per-tensor loop); the same update up to float rounding.
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, fused=True)
    else:
        opt = torch.optim.AdamW(groups, lr=recipe.lr, fused=True)
    steps_per_epoch = -(-int(members.train_mask.sum(1).max()) // recipe.batch_size)
    sched = None
    if recipe.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs * steps_per_epoch)

    augment = None
    if recipe.augment:
        from rotelab.techniques.augment import build_augment

        augment = build_augment(recipe.augment, kind=kind, feature_shape=tuple(x.shape[1:]))
    mixer = None
    if recipe.mixup or recipe.cutmix:
        from rotelab.techniques.mixing import build_mixer

        mixer = build_mixer(mixup=recipe.mixup, cutmix=recipe.cutmix, kind=kind)

    torch.manual_seed(job_seed)  # dropout, augmentation and mixing draws
    rngs = [np.random.Generator(np.random.PCG64([int(s), 0xB47C4])) for s in members.seeds]
    track_val = recipe.early_stop > 0
    best_loss = torch.full((k,), float("inf"), device=dev)
    best_epoch = np.zeros(k, dtype=np.int64)
    stopped_at = np.full(k, recipe.epochs, dtype=np.int64)
    since_best = np.zeros(k, dtype=np.int64)
    best_snap = net.snapshot() if track_val else None
    curves: dict[str, list[np.ndarray]] = {c: [] for c in CURVES}
    epochs_recorded: list[int] = []
    eps = recipe.label_smoothing

    for epoch in range(1, recipe.epochs + 1):
        net.train(True)
        idx, w = _batch_plan(members, rngs, recipe.batch_size)
        idx_t, w_t = torch.from_numpy(idx).to(dev), torch.from_numpy(w).to(dev)
        for start in range(0, idx.shape[1], recipe.batch_size):
            bi, bw = idx_t[:, start : start + recipe.batch_size], w_t[:, start : start + recipe.batch_size]
            xb = _gather(xt, bi)  # (K, B, *fs)
            target = F.one_hot(_gather(yt, bi), n_classes).float()  # (K, B, C)
            if eps:
                target = target * (1 - eps) + eps / n_classes
            if augment is not None:
                xb = augment(xb.flatten(0, 1)).view_as(xb)
            if mixer is not None:
                xb, target = mixer(xb, target)
            logits = net(xb)
            per_ex = -(target * log_softmax(logits)).sum(-1)  # (K, B)
            loss = ((per_ex * bw).sum(1) / bw.sum(1).clamp(min=1)).sum()
            if recipe.l1:
                loss = loss + recipe.l1 * sum(p.abs().sum() for p in decay)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()

        record = recipe.eval_every > 0 and (epoch % recipe.eval_every == 0 or epoch == recipe.epochs)
        if record or track_val:
            out = evaluate(net, xt, yt, outputs=("loss", "correct"))
            val_loss = _masked_mean(out["loss"], val_m)
            if record:
                epochs_recorded.append(epoch)
                for name, mask in (("train", train_m), ("val", val_m), ("test", test_m)):
                    curves[f"{name}_loss"].append(_masked_mean(out["loss"], mask))
                    curves[f"{name}_acc"].append(_masked_mean(out["correct"], mask))
            if track_val:
                vl = torch.as_tensor(np.nan_to_num(val_loss, nan=np.inf), device=dev)
                improved = (vl < best_loss) & torch.as_tensor(stopped_at >= epoch, device=dev)
                best_loss = torch.where(improved, vl, best_loss)
                imp = improved.cpu().numpy()
                best_epoch[imp] = epoch
                since_best = np.where(imp, 0, since_best + 1)
                snap = net.snapshot()
                _merge_snapshot(best_snap, snap, imp, net)
                newly = (since_best >= recipe.early_stop) & (stopped_at == recipe.epochs)
                stopped_at[newly] = epoch
        if on_epoch is not None:
            on_epoch(epoch, recipe.epochs)
        if track_val and (stopped_at < recipe.epochs).all() and (since_best >= recipe.early_stop).all():
            break

    if track_val:
        net.restore(best_snap, torch.ones(k, dtype=torch.bool, device=dev))
    else:
        best_epoch[:] = recipe.epochs
        stopped_at[:] = recipe.epochs
    final = evaluate(net, xt, yt, outputs=outputs)
    result = {name: final[name].cpu().numpy() for name in outputs}
    n_rec = len(epochs_recorded)
    for name in CURVES:
        result[name] = np.stack(curves[name], axis=1) if n_rec else np.zeros((k, 0), dtype=np.float32)
    result["epoch"] = np.asarray(epochs_recorded, dtype=np.int64)
    result["best_epoch"] = best_epoch
    result["epochs_run"] = stopped_at
    result["seconds"] = np.float64(time.perf_counter() - t0)
    result["vectorized"] = np.bool_(net.vectorized)
    return result


def _merge_snapshot(best, new, improved: np.ndarray, net) -> None:
    """best[k] <- new[k] for members that just improved (in place)."""
    if not improved.any():
        return
    if isinstance(net, StackedMembers):
        which = torch.as_tensor(improved, device=next(iter(best.values())).device)
        for key, v in best.items():
            m = which.view(-1, *([1] * (v.dim() - 1)))
            best[key] = torch.where(m, new[key], v)
    else:
        for i in np.flatnonzero(improved):
            best[i] = new[i]
