"""The driver: which jobs still need training, who trains them, and the store as the log."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rotelab.errors import Interrupted
from rotelab.executors.base import Executor
from rotelab.plan import Examples, Job
from rotelab.progress import Progress
from rotelab.store import Store


class JobResults(list):
    """Each job's arrays in the order of the jobs; ``trained`` and ``reused`` count how."""

    def __init__(self, arrays: list[dict[str, np.ndarray]], *, trained: int, reused: int):
        super().__init__(arrays)
        self.trained, self.reused = trained, reused


def run_jobs(
    jobs: Sequence[Job],
    examples: Examples,
    *,
    store: Store,
    progress: Progress,
    device: str = "auto",
    threads: int | None = None,
    executor: Executor | None = None,
) -> JobResults:
    """Train (or load) every job; returns each job's arrays in the order of ``jobs``.

    A job already in ``store`` is loaded, never trained again; a stored file that cannot be
    read is named in one warning, set aside and trained again. Every other job goes to
    ``executor`` (default: in this process) and is written to the store as soon as it
    finishes, so an interrupted study keeps it. Only this function writes job results.
    """
    if executor is None:
        from rotelab.executors.local import LocalExecutor

        executor = LocalExecutor()
    keys = [job.key(examples.fingerprint) for job in jobs]
    results: list[dict[str, np.ndarray] | None] = [None] * len(jobs)
    for i, key in enumerate(keys):  # a recorded job whose file is damaged is named, set aside, retrained
        results[i] = store.load_or_discard(key)
    todo = [i for i, r in enumerate(results) if r is None]
    progress.start(total=sum(jobs[i].recipe.epochs for i in todo), cached=len(jobs) - len(todo), n_jobs=len(jobs))
    try:
        for j, arrays in executor.train([jobs[i] for i in todo], examples, device=device, threads=threads,
                                        progress=progress):
            i = todo[j]
            store.save(keys[i], jobs[i].label, arrays)
            results[i] = arrays
    except KeyboardInterrupt:  # the store is the truth: Ctrl-C may land between a job's record and this loop
        raise Interrupted(sum(store.has(key) for key in keys), len(jobs)) from None
    finally:
        progress.stop()
    return JobResults(results, trained=len(todo), reused=len(jobs) - len(todo))  # type: ignore[arg-type]
