"""The in-process executor: trains jobs one after another, skipping those already stored."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from torch import nn

from rotelab.engine.recipe import Recipe
from rotelab.plan import Job
from rotelab.progress import Progress
from rotelab.store import Store


def run_jobs(
    jobs: Sequence[Job],
    *,
    store: Store,
    models: Callable[[Recipe], tuple[Callable[[], nn.Module], str]],
    x: np.ndarray,
    y: np.ndarray,
    test_mask: np.ndarray,
    n_classes: int,
    kind: str,
    data_fingerprint: str,
    device: str,
    progress: Progress,
) -> list[dict[str, np.ndarray]]:
    """Train (or load) every job under one progress bar; returns each job's arrays in order.

    ``models(recipe)`` gives the factory and fingerprint of the model a job's recipe trains.
    """
    from rotelab.engine.train import train_job

    keys = [job.key(data_fingerprint, models(job.recipe)[1]) for job in jobs]
    todo = [j for j, key in zip(jobs, keys) if not store.has(key)]
    progress.start(total=sum(j.recipe.epochs for j in todo), cached=len(jobs) - len(todo), n_jobs=len(jobs))
    results = []
    for job, key in zip(jobs, keys):
        if store.has(key):
            results.append(store.load(key))
            continue
        progress.job(job.label)
        arrays = train_job(
            models(job.recipe)[0], x, y, members=job.members, test_mask=test_mask, recipe=job.recipe,
            n_classes=n_classes, kind=kind, device=device, job_seed=job.job_seed,
            on_epoch=lambda e, n: progress.advance(1), on_fallback=progress.note_fallback,
        )
        skipped = job.recipe.epochs - int(arrays["epochs_run"].max())
        if skipped > 0:  # early stopping ended the job early
            progress.advance(skipped)
        store.save(key, job.label, arrays)
        results.append(arrays)
    progress.stop()
    return results
