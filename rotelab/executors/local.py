"""The in-process executor: trains jobs one after another on this machine."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from rotelab.plan import Examples, Job
from rotelab.progress import Progress


class LocalExecutor:
    """One job after another in this process; epochs reach the progress bar as they pass."""

    name = "local"

    def train(self, jobs: Iterable[Job], examples: Examples, *, device: str, threads: int | None,
              progress: Progress) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        from rotelab.engine.train import train_job

        for i, job in enumerate(jobs):
            progress.job(job.label)
            seen = [0]

            def on_epoch(epoch: int, total: int) -> None:
                seen[0] += 1
                progress.advance(1)

            arrays = train_job(
                job.model.factory, examples.x, examples.y, members=job.members, test_mask=examples.test_mask,
                recipe=job.recipe, n_classes=examples.n_classes, kind=examples.kind, device=device,
                threads=threads, job_seed=job.job_seed, on_epoch=on_epoch, on_fallback=progress.note_fallback,
                outputs=job.outputs,
            )
            if job.recipe.epochs > seen[0]:  # early stopping ended the job early
                progress.advance(job.recipe.epochs - seen[0])
            yield i, arrays
