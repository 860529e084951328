"""What the numbers ran on, how they are timed, and the machine's matmul peak."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timer:
    """Wall seconds and this process's CPU seconds (user + system, all its threads).

    Why both: the machine may be shared. Wall time is what a user waits; CPU time is what
    the work itself cost, and moves much less when other processes compete for the cores.
    """

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed(device: torch.device):
    t = Timer()
    sync(device)
    w0, c0 = time.perf_counter(), time.process_time()
    yield t
    sync(device)
    t.wall, t.cpu = time.perf_counter() - w0, time.process_time() - c0


@contextmanager
def threads(n: int):
    """Run under ``n`` intra-op threads (torch and the BLAS numpy/scikit-learn use), then restore."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


def load() -> float:
    """1-minute load average (runnable processes), or NaN where the OS has none."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device, n_threads: int) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu_name(),
        "cores": cores(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "torch_threads": torch.get_num_threads(),
        "engine_threads": n_threads,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "load_at_start": round(load(), 2),
        "git_commit": commit,
    }
    return info


def matmul_peak(device: torch.device, n_threads: int, *, n: int = 2048, reps: int = 8) -> dict:
    """FLOP/s of an n×n float32 ``torch.mm``, best of ``reps`` (2 n³ FLOPs each).

    On the CPU at torch's own thread count, at one thread and at the engine's; the peak is
    the best of them (on a busy machine two threads can lose to one). Best-of, not mean:
    the peak is what the hardware can do, and a shared machine only ever slows a run down.
    """
    if device.type == "cuda":  # a GPU finishes a 2048³ product in well under a millisecond
        n = max(n, 8192)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    counts = sorted({torch.get_num_threads(), 1, n_threads}) if device.type == "cpu" else [torch.get_num_threads()]
    out: dict = {"n": n, "reps": reps}
    for t in counts:
        with threads(t):
            torch.mm(a, b, out=c)  # warm-up: the first call allocates and picks kernels
            best_wall = best_cpu = float("inf")
            for _ in range(reps):
                with timed(device) as tm:
                    torch.mm(a, b, out=c)
                best_wall, best_cpu = min(best_wall, tm.wall), min(best_cpu, tm.cpu)
        out[f"threads_{t}"] = {"flops_wall": 2 * n**3 / best_wall, "flops_cpu": 2 * n**3 / best_cpu}
    out["peak_flops"] = max(v["flops_wall"] for k, v in out.items() if k.startswith("threads_"))
    # one thread's CPU-time FLOP/s: the yardstick for a single-threaded job's CPU-time FLOP/s
    out["one_thread_flops_cpu"] = out.get("threads_1", out[f"threads_{counts[0]}"])["flops_cpu"]
    return out


def write_results(out: str | Path, name: str, res: dict, text: str, *, quick: bool = False) -> None:
    """``{out}/{name}.json`` (the raw results) and ``{name}.md`` (the report), ``_quick`` added to
    a smoke run's names so it never overwrites a real run's; prints the report."""
    suffix = "_quick" if quick else ""
    out = Path(out)
    (out / f"{name}{suffix}.json").write_text(json.dumps(res, indent=1, default=str))
    (out / f"{name}{suffix}.md").write_text(text)
    print(text)
