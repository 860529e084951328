"""What an executor is: something that trains jobs and hands back each one's arrays.

The driver (:func:`rotelab.executors.run_jobs`) decides which jobs still need training,
writes every result to the store and owns the progress bar; an executor only trains. So
the study code does not know which executor runs its jobs, and a crashed run resumes from
the store whatever trained it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

import numpy as np

from rotelab.plan import Examples, Job
from rotelab.progress import Progress


class Executor(Protocol):
    """Trains jobs; yields ``(position, arrays)`` as each finishes, in any order, where
    ``position`` counts the jobs in the order they were taken from ``jobs`` (0, 1, ...).

    ``jobs`` may be a lazy iterator: the driver leases each job in the store when the executor
    takes it, so an executor takes a job only when it can start it (one at a time in this
    process; as many as the cluster runs at once on Ray). Each finished job must have advanced
    ``progress`` by its full ``recipe.epochs`` (an executor that cannot report epochs as they
    pass advances them when the job ends).
    """

    name: str

    # Optional, for taking jobs from other studies (``Store.copy_from_other_studies``): an
    # executor without them never takes such jobs, and what it trains is never taken.
    #   platform(device) -> str | None: the platform (``executors.local.platform_of``) its jobs
    #       will train on, known before any is dispatched; None when it cannot tell.
    #   trained_on: str | None: the platform of the job it yielded last.

    def train(self, jobs: Iterable[Job], examples: Examples, *, device: str, threads: int | None,
              progress: Progress) -> Iterator[tuple[int, dict[str, np.ndarray]]]: ...
