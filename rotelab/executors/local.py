"""The in-process executor: trains jobs one after another on this machine.

A job whose members do not fit in memory (``rotelab.engine.memory``) is trained in parts of
as many members as fit, halving on an out-of-memory error, and joined back into one result:
a study never stops for memory while one member fits, and finished jobs are stored already.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

import numpy as np

from rotelab.engine.train import Members
from rotelab.errors import RotelabError
from rotelab.plan import Examples, Job
from rotelab.progress import Progress


def platform_of(device: str) -> str:
    """What decides a job's numbers besides its content key: the rotelab and torch versions and
    the device (``cpu`` with the instruction set torch dispatches to, or the CUDA GPU's name and
    CUDA version), e.g. ``rotelab 0.1.0; torch 2.5.1; cpu AVX2``. A study takes a job from
    another study only when both were trained on the same platform."""
    import torch

    from rotelab import __version__
    from rotelab.engine.train import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        where = f"cuda {torch.cuda.get_device_name(dev)}; CUDA {torch.version.cuda}"
    else:
        where = f"{dev.type} {torch.backends.cpu.get_cpu_capability()}"
    return f"rotelab {__version__}; torch {torch.__version__}; {where}"


class LocalExecutor:
    """One job after another in this process; epochs reach the progress bar as they pass.
    ``trained_on``: the platform (:func:`platform_of`) of the job it yielded last."""

    name = "local"
    trained_on: str | None = None

    def platform(self, device: str) -> str | None:
        """The platform this executor's jobs train on (this process, ``device``)."""
        return platform_of(device)

    def train(self, jobs: Iterable[Job], examples: Examples, *, device: str, threads: int | None,
              progress: Progress) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        self.trained_on = platform_of(device)
        for i, job in enumerate(jobs):
            progress.job(job.label)
            seen = [0]

            def on_epoch(epoch: int, total: int) -> None:
                seen[0] += 1
                progress.advance(1)

            arrays = train_fitting(job, examples, device=device, threads=threads, on_epoch=on_epoch,
                                   on_fallback=progress.note_fallback)
            if job.recipe.epochs > seen[0]:  # early stopping ended the job early
                progress.advance(job.recipe.epochs - seen[0])
            yield i, arrays


def train_fitting(job: Job, examples: Examples, *, device: str, threads: int | None,
                  on_epoch: Callable[[int, int], None] | None = None,
                  on_fallback: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """``train_job`` for ``job``, in parts of fewer members when they do not fit in memory."""
    import torch

    from rotelab.engine.memory import JobTooLarge, join_parts
    from rotelab.engine.train import train_job

    try:
        return train_job(job.model.factory, examples.x, examples.y, members=job.members,
                         test_mask=examples.test_mask, recipe=job.recipe, n_classes=examples.n_classes,
                         kind=examples.kind, device=device, threads=threads, job_seed=job.job_seed,
                         on_epoch=on_epoch, on_fallback=on_fallback, outputs=job.outputs,
                         y_score=examples.clean if examples.noisy else None)
    except (JobTooLarge, torch.OutOfMemoryError) as exc:
        k = job.members.k
        fit = exc.fit if isinstance(exc, JobTooLarge) else k // 2
        if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
            torch.cuda.empty_cache()
        if k == 1 or fit < 1:
            why = (exc.advice() if isinstance(exc, JobTooLarge) else "one member ran out of GPU memory; use a smaller "
                   "--batch-size or --width, or a GPU with more free memory")
            raise RotelabError(f"job {job.label!r}: {why}") from None
        size = min(fit, k // 2) if fit >= k else fit
        parts = [train_fitting(_part(job, range(s, min(s + size, k))), examples, device=device, threads=threads,
                               on_epoch=on_epoch if s == 0 else None, on_fallback=on_fallback)
                 for s in range(0, k, size)]
        return join_parts(parts)


def _part(job: Job, rows: range) -> Job:
    """The job with only members ``rows``: same recipe, model and job seed."""
    m = job.members
    return replace(job, members=Members(m.seeds[rows.start:rows.stop], m.train_mask[rows.start:rows.stop],
                                        m.val_mask[rows.start:rows.stop]))
