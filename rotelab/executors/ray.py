"""The Ray executor: one job is one Ray task, on this machine or on a cluster.

The examples go into Ray's object store once (``ray.put``) and every task reads them from
there; each task reserves ``num_cpus`` (its torch threads) and ``num_gpus`` (a fraction
lets several jobs share a GPU, each capped to that share of its memory). Results come back
with ``ray.wait`` as they finish, in any order, and go to the driver, which alone writes
the store. A worker that dies (killed, out of memory, its node lost) is retried
``max_retries`` times; an exception raised by the model's code is not (it would fail the
same way again) and is reported as one line. The numbers equal the local executor's: the
same ``train_job`` runs with the same seeds, and on the CPU its results do not depend on the
thread count.

Ray is optional (``pip install 'rotelab[ray]'``): it is imported inside functions only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rotelab.errors import InvalidInputError, JobFailedError, RotelabError
from rotelab.plan import Examples, Job
from rotelab.progress import Progress

#: Times a task is run again after its worker died, before the study stops with an error.
MAX_RETRIES = 3
INSTALL = "pip install 'rotelab[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, or an InvalidInputError naming the install command."""
    try:
        import ray
    except ImportError:
        raise InvalidInputError(f"--executor ray needs Ray, which is not installed here; install it with: "
                                f"{INSTALL} (or use --executor local)") from None
    return ray


def check_address(address: str | None, *, timeout: float = 5.0) -> None:
    """An InvalidInputError when ``address`` (``host:port`` or ``ray://host:port``; ``auto`` and
    None are left to Ray) does not answer within ``timeout`` seconds: Ray itself would retry
    for minutes before saying so."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInputError(f"--ray-address {address!r}: expected auto, host:port or ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InvalidInputError(f"--ray-address {address}: nothing answers there ({type(exc).__name__}: "
                                f"{_first_line(exc)}); start the cluster with `ray start --head` and pass the address "
                                "it prints, or leave --ray-address and RAY_ADDRESS unset for a local Ray") from None


# ══ what each task reserves ════════════════════════════════════════════════════════════
@dataclass(frozen=True)
class Placement:
    """One task's reservation and how it trains: Ray's ``num_cpus``/``num_gpus``, and the
    device and torch threads ``train_job`` is given in the worker."""

    num_cpus: float
    num_gpus: float
    device: str  # "cpu" or "cuda" (the GPU Ray assigned the task)
    threads: int

    def slots(self, resources: dict[str, float]) -> int:
        """Tasks the cluster runs at once with this reservation (at least 1)."""
        n = resources.get("CPU", 0.0) / self.num_cpus if self.num_cpus else float("inf")
        if self.num_gpus:
            n = min(n, resources.get("GPU", 0.0) / self.num_gpus)
        return max(1, int(n + 1e-9)) if n != float("inf") else 1


def placement(device: str, *, threads: int | None, cpus_per_job: float | None, gpus_per_job: float | None,
              resources: dict[str, float]) -> Placement:
    """What each task reserves, from the options and the cluster's ``resources``
    (``ray.cluster_resources()``): CPUs = ``cpus_per_job``, else ``threads``, else 1; GPUs =
    ``gpus_per_job``, else 1 when ``device`` is cuda, or auto on a cluster with GPUs, else 0."""
    cpus = float(cpus_per_job or threads or 1)
    gpus_there = resources.get("GPU", 0.0)
    if gpus_per_job:
        gpus = float(gpus_per_job)
    else:
        gpus = 1.0 if device == "cuda" or (device == "auto" and gpus_there > 0) else 0.0
    if gpus and not gpus_there:
        raise InvalidInputError("a GPU was asked for (--device cuda or --gpus-per-job) but the Ray cluster has no "
                                "GPU; use --device auto or cpu, or join a cluster with GPUs (--ray-address)")
    if cpus > resources.get("CPU", cpus):
        raise InvalidInputError(f"each job asks for {cpus:g} CPUs but the Ray cluster has "
                                f"{resources.get('CPU', 0):g}; use a smaller --cpus-per-job or --threads")
    return Placement(cpus, gpus, "cuda" if gpus else "cpu", max(1, int(cpus)))


# ══ in the worker ══════════════════════════════════════════════════════════════════════
def train_task(job: Job, examples: Examples, device: str, threads: int, gpu_share: float
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One job in a Ray worker, as the local executor trains it (``train_fitting``: in parts
    when its members do not fit in memory) on ``threads`` torch threads; on a GPU share below
    1 the process may use only that fraction of the GPU's memory (the memory planner then sees
    that share). Returns the arrays and where it ran (host, pid, attempt: 0 on the first run,
    n after n retries)."""
    import torch

    from rotelab.executors.local import platform_of, train_fitting

    started = time.time()
    if device == "cuda" and 0 < gpu_share < 1:
        torch.cuda.set_per_process_memory_fraction(gpu_share)
    notes: list[str] = []
    with warnings.catch_warnings():
        # the examples are read-only views of the object store; the engine never writes to them
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        arrays = train_fitting(job, examples, device=device, threads=threads, on_fallback=notes.append)
    return arrays, {"host": socket.gethostname(), "pid": os.getpid(), "attempt": _attempt(), "fallback": notes,
                    "started": started, "ended": time.time(), "platform": platform_of(device)}


def _attempt() -> int:
    """Which run of this task this is (0 = first); 0 where Ray does not tell."""
    try:
        import ray

        return int(ray._private.worker.global_worker.core_worker.get_current_task_attempt_number())
    except Exception:  # noqa: BLE001 — a private API: absent in another Ray release
        return 0


@contextlib.contextmanager
def _quiet_secure_default() -> Iterator[None]:
    """Drop Ray's note that the local cluster rotelab starts uses token authentication (Ray's
    secure default: nothing to act on, and it came through ``-q``); its warning that a
    cluster runs *without* authentication still shows."""
    log = logging.getLogger("ray._private.authentication.authentication_token_setup")

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")

    log.addFilter(keep)
    try:
        yield
    finally:
        log.removeFilter(keep)


# ══ in the driver ══════════════════════════════════════════════════════════════════════
class RayExecutor:
    """Jobs as Ray tasks. ``address``: the cluster to join (``auto``, ``host:port``,
    ``ray://host:port``); None joins ``RAY_ADDRESS`` when set, else starts a local Ray with
    ``num_cpus`` CPUs (default: all), stopped again when the jobs are done. A Ray already
    started in this process (``ray.init``) is used as it is. ``runs`` records each finished
    task: its job's label and where and when it ran (host, pid, attempt, started and ended
    by the worker's clock). ``trained_on``: the platform the job it yielded last trained on, as
    its worker reported it."""

    name = "ray"
    trained_on: str | None = None

    def __init__(self, *, address: str | None = None, cpus_per_job: float | None = None,
                 gpus_per_job: float | None = None, max_retries: int = MAX_RETRIES, num_cpus: int | None = None):
        self.address, self.cpus_per_job, self.gpus_per_job = address, cpus_per_job, gpus_per_job
        self.max_retries, self.num_cpus = max_retries, num_cpus
        self.runs: list[dict[str, Any]] = []

    def platform(self, device: str) -> str | None:
        """The platform the tasks will train on, where it is known before they run: a Ray this
        executor starts on this machine, its tasks on the CPU (the workers are this Python on
        this CPU). A cluster's workers, a Ray already started, and GPUs (which Ray assigns) are
        known only once tasks ran: None, and the study takes no jobs from other studies."""
        if self.address or os.environ.get("RAY_ADDRESS") or self.gpus_per_job:
            return None
        from rotelab.engine.train import resolve_device
        from rotelab.executors.local import platform_of

        if resolve_device(device).type != "cpu" or require_ray().is_initialized():
            return None
        return platform_of("cpu")

    def train(self, jobs: Iterable[Job], examples: Examples, *, device: str, threads: int | None,
              progress: Progress) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        ray = require_ray()
        started = self._connect(ray)
        try:
            place = placement(str(device), threads=threads, cpus_per_job=self.cpus_per_job,
                              gpus_per_job=self.gpus_per_job, resources=ray.cluster_resources())
            yield from self._run(ray, iter(jobs), examples, place, progress)
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Join or start Ray; True when this call started it (and must stop it)."""
        if ray.is_initialized():
            return False
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        quiet = {"logging_level": logging.WARNING, "log_to_driver": True}
        try:
            if address is None:
                with _quiet_secure_default():
                    ray.init(num_cpus=self.num_cpus, include_dashboard=False, **quiet)
            else:
                ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or "a new local cluster"
            raise InvalidInputError(f"cannot start or join Ray at {where} ({type(exc).__name__}: "
                                    f"{_first_line(exc)}); start a cluster with `ray start --head`, or leave "
                                    "--ray-address and RAY_ADDRESS unset for a local Ray") from None
        return True

    def _run(self, ray: Any, jobs: Iterator[Job], examples: Examples, place: Placement,
             progress: Progress) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Keep as many tasks in flight as the cluster runs at once; yield each as it finishes."""
        data = ray.put(examples)  # once: every task reads the same copy
        remote = ray.remote(train_task).options(num_cpus=place.num_cpus, num_gpus=place.num_gpus,
                                                max_retries=self.max_retries, retry_exceptions=False)
        slots, taken, pending = place.slots(ray.cluster_resources()), 0, {}
        try:
            while True:
                while len(pending) < slots and (job := next(jobs, None)) is not None:
                    pending[self._submit(remote, job, data, place)] = (taken, job)
                    taken += 1
                if not pending:
                    return
                progress.job(f"{len(pending)} job(s) running on Ray")
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                i, job = pending.pop(ref)
                arrays, where = self._result(ray, ref, job)
                self.runs.append({"label": job.label, **where})
                self.trained_on = where.get("platform")
                progress.advance(job.recipe.epochs)  # a job's epochs count when it finishes
                if where["fallback"]:
                    progress.note_fallback(where["fallback"][0])
                if where["attempt"]:
                    progress.note(f"job {job.label} was retried on Ray after its worker died; run {where['attempt'] + 1}"
                                  f" of at most {self.max_retries + 1} finished on {where['host']} (pid {where['pid']})")
                yield i, arrays
        finally:
            for ref in pending:  # an error or an interrupt: stop what is still running
                ray.cancel(ref, force=True)

    def _submit(self, remote: Any, job: Job, data: Any, place: Placement) -> Any:
        """Start one task; a model factory Ray cannot send to a worker is named in one line."""
        try:
            return remote.remote(job, data, place.device, place.threads, place.num_gpus)
        except (TypeError, AttributeError, ValueError) as exc:
            if "pickle" not in str(exc).lower() and "serializ" not in str(exc).lower():
                raise
            root = _root_cause(exc)
            raise InvalidInputError(f"job {job.label}: its model factory cannot be sent to Ray workers "
                                    f"({type(root).__name__}: {_first_line(root)[:200]}); build the model from "
                                    "picklable parts (no locks, open files or connections in the factory), or use "
                                    "--executor local") from None

    def _result(self, ray: Any, ref: Any, job: Job) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """A finished task's arrays; its failure as one line (a RotelabError from rotelab itself
        is raised as it was)."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RotelabError):
                raise cause from None
            what = f"{type(cause).__name__}: {_first_line(cause)}" if cause is not None else _first_line(exc)
            if isinstance(cause, ImportError):  # the worker's Python lacks a module the job needs
                raise JobFailedError(f"job {job.label} failed on Ray ({what}); every Ray node needs rotelab and the "
                                     "module of your model installed (pip install on each node)") from None
            raise JobFailedError(f"job {job.label} failed on Ray ({what}); an error in the model's code is not "
                                 "retried; fix it and rerun the same command, which keeps the finished jobs") from None
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError,
                ray.exceptions.ObjectLostError) as exc:
            raise JobFailedError(f"job {job.label}: its Ray worker died {self.max_retries + 1} times "
                                 f"({type(exc).__name__}); check the workers' memory and logs, then rerun the same "
                                 "command, which keeps the finished jobs") from None


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception ``exc`` was raised from (Ray wraps a pickling error in its own)."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


__all__ = ["INSTALL", "MAX_RETRIES", "Placement", "RayExecutor", "check_address", "placement", "require_ray",
           "train_task"]
