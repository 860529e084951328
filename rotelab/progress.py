"""Progress reporting for training: a rich bar on stderr, or silence (tests, ``--json``)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as _RichProgress


class Progress:
    """Silent base: the executor calls these hooks; subclasses show them."""

    def start(self, *, total: int, cached: int, n_jobs: int) -> None: ...
    def job(self, label: str) -> None: ...
    def advance(self, epochs: int) -> None: ...
    def finished(self, members: int) -> None:
        """A job of ``members`` models is done (the driver calls it, whatever trained the job)."""
    def stop(self) -> None: ...

    def note(self, line: str) -> None:
        """One line the user should see while training goes on (a retried Ray task)."""
        print(f"note: {line}", file=sys.stderr)

    def note_fallback(self, reason: str) -> None:
        """Say once that a model is trained member by member, and why."""
        if not getattr(self, "_fallback_said", False):
            self._fallback_said = True
            print(
                f"note: this model cannot be vectorized ({reason}); training its members one by one",
                file=sys.stderr,
            )


class RichProgress(Progress):
    """One bar over all epochs of all jobs still to train, on stderr."""

    def __init__(self, title: str, console: Console | None = None):
        self.title = title
        self.console = console or Console(stderr=True)
        self._bar: _RichProgress | None = None
        self._task = None

    def start(self, *, total: int, cached: int, n_jobs: int) -> None:
        if cached:
            self.console.print(f"[dim]{self.title}: reusing {cached} of {n_jobs} finished job(s) from the store[/dim]")
        if total == 0:
            return
        self._bar = _RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("epochs · {task.fields[jobs]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self._bar.start()
        self._jobs, self._n_jobs, self._members, self._t0 = cached, n_jobs, 0, time.perf_counter()
        self._task = self._bar.add_task(self.title, total=total, jobs=self._jobs_text())

    def _jobs_text(self) -> str:
        """``3/12 jobs · 41 models/s``: jobs done (stored ones included), models trained per second."""
        rate = self._members / max(time.perf_counter() - self._t0, 1e-9)
        return f"{self._jobs}/{self._n_jobs} jobs" + (f" · {rate:.3g} models/s" if self._members else "")

    def finished(self, members: int) -> None:
        if self._bar is not None:
            self._jobs += 1
            self._members += members
            self._bar.update(self._task, jobs=self._jobs_text())

    def job(self, label: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.title}: {label}")

    def advance(self, epochs: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, epochs)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=self.title)
            self._bar.stop()
            self._bar = None

    def note(self, line: str) -> None:
        self.console.print(f"[yellow]note:[/yellow] {line}", highlight=False)

    def note_fallback(self, reason: str) -> None:
        if not getattr(self, "_fallback_said", False):
            self._fallback_said = True
            self.console.print(f"[yellow]note:[/yellow] this model cannot be vectorized ({reason}); training its members one by one")
