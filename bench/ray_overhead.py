"""What Ray costs: a 256-model MNIST-1D memorization study, local executor vs Ray.

``python -m bench.ray_overhead [--models 256] [--chunk 32] [--epochs 20] [--workers 2] [--device cpu|cuda]
[--gpus-per-job F] [--out DIR]``

The same study (same models, seeds, subsets) runs three times, each into a fresh ``runs``
directory so every job trains: on the local executor (after a one-epoch warm-up study), then
on a Ray of ``workers`` CPUs
(``cpus_per_job`` 1, so ``workers`` tasks at once) twice, cold (the workers start and import
torch during the study) and warm (the workers are up). The numbers are checked equal. For each
run: the study's wall time, the training phase's wall time (the driver's ``run_jobs``, from
the progress bar's start to its stop), the jobs' own training seconds (``train_job``'s, stored
with each job) and the overhead per job: ``(training wall × slots − Σ job seconds) / jobs``,
the time a slot spent on a job outside ``train_job`` (scheduling, moving the arrays, starting
workers, an idle tail). Ray's bare per-task cost comes from empty tasks that read the study's
examples from the object store. On paper, from the per-job seconds and that per-task cost:
the time of a study of J jobs on N GPUs, T(N) = ceil(J / N) × (t_job + o_task).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rotelab.progress import Progress


class _Phase(Progress):
    """A silent progress bar that remembers when training started and stopped."""

    def start(self, *, total: int, cached: int, n_jobs: int) -> None:
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        self.t1 = time.perf_counter()


def _study(runs: Path, *, models: int, chunk: int, epochs: int, device: str, **executor: Any) -> dict:
    """One memorization study into a fresh directory: wall, training wall, Σ job seconds, numbers."""
    import rotelab
    from rotelab.store import Store

    phase = _Phase()
    t0 = time.perf_counter()
    r = rotelab.memorization("mnist1d", "mlp", models=models, chunk=chunk, epochs=epochs, device=device,
                             runs_dir=runs, progress=phase, **executor)
    wall = time.perf_counter() - t0
    store = Store.open(r.study_dir)
    try:
        seconds = [float(store.load(key)["seconds"]) for key, *_ in store.jobs()]
    finally:
        store.close()
    return {"wall": wall, "train_wall": phase.t1 - phase.t0, "job_seconds": sum(seconds), "jobs": len(seconds),
            "scores": r.arrays["baseline"]["memorization"]}


def _task_overhead(ray: Any, examples: Any, n: int = 60) -> dict:
    """Ray's bare cost of a task that reads the examples: one at a time (latency) and ``n`` at once."""
    @ray.remote(num_cpus=1)
    def empty(ex: Any) -> int:
        return len(ex.y)

    t = time.perf_counter()
    ref = ray.put(examples)
    put = time.perf_counter() - t
    ray.get([empty.remote(ref) for _ in range(4)])  # workers up
    t = time.perf_counter()
    for _ in range(n):
        ray.get(empty.remote(ref))
    latency = (time.perf_counter() - t) / n
    t = time.perf_counter()
    ray.get([empty.remote(ref) for _ in range(n)])
    return {"put_s": put, "put_mb": examples.x.nbytes / 1e6, "latency_s": latency,
            "throughput_s": (time.perf_counter() - t) / n}


def ray_overhead(*, models: int = 256, chunk: int = 32, epochs: int = 20, workers: int = 2, device: str = "cpu",
                 gpus_per_job: float | None = None) -> dict:
    """Run the comparison (see the module's docstring); plain numbers, ready for :func:`markdown`."""
    import ray

    from rotelab.data import load_dataset
    from rotelab.plan import Examples

    size = {"models": models, "chunk": chunk, "epochs": epochs, "device": device}
    res: dict[str, Any] = {**size, "workers": workers, "gpus_per_job": gpus_per_job, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        # warm this process first (the dataset generated, torch's optimizer code imported), as Ray's
        # warm workers are
        _study(Path(tmp) / "warm-up", **{**size, "models": 32, "chunk": 32, "epochs": 1})
        res["local"] = _study(Path(tmp) / "local", **size)
        t = time.perf_counter()
        gpus = 1 if device == "cuda" else 0
        ray.init(num_cpus=workers, num_gpus=gpus, include_dashboard=False, logging_level="WARNING")
        res["ray_start_s"] = time.perf_counter() - t
        try:
            on_ray = {"executor": "ray", "cpus_per_job": 1, "gpus_per_job": gpus_per_job}
            res["ray_cold"] = _study(Path(tmp) / "cold", **size, **on_ray)
            res["ray_warm"] = _study(Path(tmp) / "warm", **size, **on_ray)
            res["task"] = _task_overhead(ray, Examples.of(load_dataset("mnist1d")))
        finally:
            ray.shutdown()
    slots = workers if not gpus_per_job else min(workers, int(1 / gpus_per_job + 1e-9))
    res["slots"] = slots
    for name, n_slots in (("local", 1), ("ray_cold", slots), ("ray_warm", slots)):
        run = res[name]
        run["equal_to_local"] = bool(np.array_equal(run.pop("scores"), res["local"]["scores"])) \
            if name != "local" else True
        run["overhead_per_job"] = (run["train_wall"] * n_slots - run["job_seconds"]) / run["jobs"]
        run["job_s"] = run["job_seconds"] / run["jobs"]
    res["local"].pop("scores")
    return res


def scaling(job_s: float, task_s: float, jobs: int, gpus: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> list[dict]:
    """T(N) = ceil(jobs / N) × (job_s + task_s) on N GPUs (one job at a time each), and the speed-up
    over one GPU on the local executor (jobs × job_s): the estimate README quotes."""
    local = jobs * job_s
    return [{"gpus": n, "seconds": math.ceil(jobs / n) * (job_s + task_s),
             "speedup": local / (math.ceil(jobs / n) * (job_s + task_s))} for n in gpus]


def markdown(res: dict, *, gpu_job_s: float | None = None, models: int = 2048) -> str:
    """The measured table and the scaling estimate (a ``models``-model study in jobs of this run's
    size; per-job seconds measured here, or ``gpu_job_s``), as markdown."""
    lines = [f"## Ray overhead: {res['models']}-model MNIST-1D memorization, {res['epochs']} epochs, "
             f"jobs of {res['chunk']} models, device {res['device']}, {res['cores']} cores\n",
             f"Ray start (`ray.init`, {res['workers']} CPUs): {res['ray_start_s']:.1f} s. Empty task reading the "
             f"examples ({res['task']['put_mb']:.1f} MB, `ray.put` once in {res['task']['put_s'] * 1e3:.0f} ms): "
             f"{res['task']['latency_s'] * 1e3:.1f} ms one at a time, {res['task']['throughput_s'] * 1e3:.1f} ms "
             "each when many are in flight.\n",
             "| executor | study wall s | training wall s | jobs | Σ job s (in `train_job`) | s per job | overhead "
             "per job s | same numbers as local |", "|---|---|---|---|---|---|---|---|"]
    names = {"local": "local (one job at a time in this process, warm)",
             "ray_cold": f"Ray, {res['slots']} workers, cold (workers start during the study)",
             "ray_warm": f"Ray, {res['slots']} workers, warm"}
    for key, label in names.items():
        r = res[key]
        lines.append(f"| {label} | {r['wall']:.1f} | {r['train_wall']:.1f} | {r['jobs']} | {r['job_seconds']:.1f} | "
                     f"{r['job_s']:.2f} | {r['overhead_per_job']:.2f} | {'yes' if r['equal_to_local'] else 'NO'} |")
    task, per_job = res["task"]["latency_s"], max(res["ray_warm"]["overhead_per_job"], 0.0)
    job_s = gpu_job_s if gpu_job_s is not None else res["local"]["job_s"]
    jobs = math.ceil(models / res["chunk"])
    lines += ["", f"On paper: a {models}-model study in jobs of {res['chunk']} ({jobs} jobs) of {job_s:.2f} s each "
              f"({'given' if gpu_job_s is not None else 'the local per-job time above'}), on N GPUs one job each: "
              f"T(N) = ceil(J / N) × (t_job + o), with o = Ray's bare task cost ({task * 1e3:.1f} ms) or the overhead "
              f"per job measured on warm Ray ({per_job:.2f} s, results moved back and the idle tail included); "
              "speed-up against one GPU on the local executor (J × t_job).", "",
              "| GPUs | T s (bare task cost) | speed-up | T s (measured overhead per job) | speed-up |",
              "|---|---|---|---|---|"]
    for bare, measured in zip(scaling(job_s, task, jobs), scaling(job_s, per_job, jobs)):
        lines.append(f"| {bare['gpus']} | {bare['seconds']:.1f} | {bare['speedup']:.1f}× | {measured['seconds']:.1f} "
                     f"| {measured['speedup']:.1f}× |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ray_overhead", description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=256)
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--gpus-per-job", type=float, default=None)
    p.add_argument("--gpu-job-s", type=float, default=None, help="per-job seconds for the scaling estimate")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    res = ray_overhead(models=a.models, chunk=a.chunk, epochs=a.epochs, workers=a.workers, device=a.device,
                       gpus_per_job=a.gpus_per_job)
    text = markdown(res, gpu_job_s=a.gpu_job_s)
    print(text)
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "ray_overhead.json").write_text(json.dumps(res, indent=2))
        (Path(a.out) / "ray_overhead.md").write_text(text)
    print(json.dumps(res), file=sys.stderr)


if __name__ == "__main__":
    main()
