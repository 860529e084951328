"""Progress reporting for training: a rich bar on stderr, or silence (tests, ``--json``)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as _RichProgress


class Progress:
    """Silent base: the executor calls these hooks; subclasses show them."""

    def start(self, *, total: int, cached: int, n_jobs: int) -> None: ...
    def job(self, label: str) -> None: ...
    def advance(self, epochs: int) -> None: ...
    def stop(self) -> None: ...

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
            TextColumn("epochs"), TimeElapsedColumn(), TimeRemainingColumn(), console=self.console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.title, total=total)

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

    def note_fallback(self, reason: str) -> None:
        if not getattr(self, "_fallback_said", False):
            self._fallback_said = True
            self.console.print(f"[yellow]note:[/yellow] this model cannot be vectorized ({reason}); training its members one by one")
