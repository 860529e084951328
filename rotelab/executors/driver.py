"""The driver: which jobs still need training, who trains them, and the store as the log.

Only the driver writes job results. It leases each job in the store just before handing it
to the executor (so a second driver on the same study, or a restarted one, never trains a job
this one holds), keeps its leases alive from a heartbeat thread, saves each result as it
comes back, and then waits for the jobs another live driver holds: they appear in the store,
or their lease expires (that driver died) and this one trains them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rotelab.errors import Interrupted
from rotelab.executors.base import Executor
from rotelab.plan import Examples, Job
from rotelab.progress import Progress
from rotelab.store import LEASE_SECONDS, Owner, Store

#: Seconds between two looks at the store while another driver trains the jobs left.
POLL_SECONDS = 0.5


class JobResults(list):
    """Each job's arrays in the order of the jobs; ``trained`` (by this driver) and ``reused``
    (stored before, taken from another study, or trained meanwhile by another driver) count
    how; ``copied`` names the other studies the reused jobs were taken from ``{key: study}``."""

    def __init__(self, arrays: list[dict[str, np.ndarray]], *, trained: int, reused: int,
                 copied: dict[str, str] | None = None):
        super().__init__(arrays)
        self.trained, self.reused = trained, reused
        self.copied = dict(copied or {})


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
    read is named in one warning, set aside and trained again. A job another study of the same
    runs directory finished on the platform ``executor`` trains on (same key, same rotelab, torch
    and device) is taken from it here, in the driver, before anything is dispatched
    (:meth:`Store.copy_from_other_studies`), and counts as reused. Every other job is leased to
    this driver, handed to ``executor`` (default: in this process) and written to the store as
    soon as it finishes, so an interrupted study keeps it. Jobs another live driver holds are
    waited for. Only this function writes job results.
    """
    if executor is None:
        from rotelab.executors.local import LocalExecutor

        executor = LocalExecutor()
    d = _Driver(list(jobs), [job.key(examples.fingerprint) for job in jobs], store, progress, Owner.this_process())
    d.results = [store.load_or_discard(key) for key in d.keys]  # a damaged file: named, set aside, retrained
    platform = executor.platform(str(device)) if callable(getattr(executor, "platform", None)) else None
    copied = d.copy_from_other_studies(platform)
    todo = d.pending()
    progress.start(total=sum(jobs[i].recipe.epochs for i in todo), cached=len(jobs) - len(todo), n_jobs=len(jobs))
    if copied and type(progress) is not Progress:  # the silent Progress stays silent
        studies = sorted(set(copied.values()))
        progress.note(f"{len(copied)} of them taken from other studies in {store.path.parent} (the same jobs, "
                      f"trained by the same rotelab and torch on this device): {', '.join(studies[:3])}"
                      f"{', …' if len(studies) > 3 else ''}")
    try:
        with _heartbeat(store, d.owner):
            while d.pending():
                d.train(executor, examples, device=device, threads=threads)
                d.wait_for_others()
    except KeyboardInterrupt:  # the store is the truth: Ctrl-C may land between a job's record and this loop
        raise Interrupted(sum(store.has(key) for key in d.keys), len(jobs)) from None
    finally:
        with contextlib.suppress(Exception):  # a lease left behind only expires later
            store.release(d.owner)
        progress.stop()
    return JobResults(d.results, trained=d.trained, reused=len(jobs) - d.trained,  # type: ignore[arg-type]
                      copied=copied)


@dataclass(eq=False)
class _Driver:
    """One driver's view of a study's jobs: ``results[i]`` is None until job i is in hand."""

    jobs: list[Job]
    keys: list[str]
    store: Store
    progress: Progress
    owner: Owner
    results: list[dict[str, np.ndarray] | None] = field(default_factory=list)
    trained: int = 0

    def pending(self) -> list[int]:
        return [i for i, r in enumerate(self.results) if r is None]

    def copy_from_other_studies(self, platform: str | None) -> dict[str, str]:
        """Take the pending jobs other studies finished on ``platform`` into the store and load
        them; ``{key: study}`` of those taken. Only jobs of a built-in model: the fingerprint of
        your own model's factory covers its class's source, not the code it calls or the
        factory's closure, so those jobs are reused within their own study only. A job another
        live driver of this study holds is left to it (only a job's holder writes it)."""
        pending = [i for i in self.pending() if self.jobs[i].model.fingerprint.startswith("builtin:")]
        if not pending or platform is None:
            return {}
        holders = self.store.holders([self.keys[i] for i in pending])
        pending = [i for i in pending if holders[self.keys[i]] is None]
        copied = self.store.copy_from_other_studies([(self.keys[i], self.jobs[i].label) for i in pending],
                                                    platform=platform)
        loaded = set()
        for i in pending:
            if self.keys[i] in copied:
                self.results[i] = self.store.load_or_discard(self.keys[i])
                if self.results[i] is not None:
                    loaded.add(self.keys[i])
        return {key: study for key, study in copied.items() if key in loaded}

    def _loaded(self, i: int) -> bool:
        """Take job i from the store (another driver trained it); False when it must be trained."""
        arrays = self.store.load_or_discard(self.keys[i])
        if arrays is None:
            return False
        self.results[i] = arrays
        self.progress.advance(self.jobs[i].recipe.epochs)
        self.progress.finished(self.jobs[i].members.k)
        return True

    def _claimed(self, order: list[int]) -> Iterator[Job]:
        """The jobs this driver leases, each claimed just before the executor takes it (so two
        drivers share the work instead of one holding all of it); their positions go to ``order``."""
        for i in self.pending():
            state = self.store.claim(self.keys[i], self.owner)
            if state == "done" and not self._loaded(i):
                state = self.store.claim(self.keys[i], self.owner)
            if state == "claimed":
                order.append(i)
                yield self.jobs[i]

    def train(self, executor: Executor, examples: Examples, *, device: str, threads: int | None) -> None:
        """Every job this driver can lease, through ``executor``; each saved as it returns."""
        order: list[int] = []
        for j, arrays in executor.train(self._claimed(order), examples, device=device, threads=threads,
                                        progress=self.progress):
            i = order[j]
            self.store.save(self.keys[i], self.jobs[i].label, arrays, owner=self.owner,
                            platform=getattr(executor, "trained_on", None))
            self.results[i] = arrays
            self.trained += 1
            self.progress.finished(self.jobs[i].members.k)

    def wait_for_others(self) -> None:
        """Until every job is in hand, or one of the missing is free to lease (its holder died)."""
        said = None
        while pending := self.pending():
            holders = self.store.holders([self.keys[i] for i in pending])
            for i in pending:
                if self.store.has(self.keys[i]):
                    self._loaded(i)
            if any(holders[self.keys[i]] is None and self.results[i] is None for i in pending):
                return
            who = ", ".join(sorted({h for h in holders.values() if h}))
            if who != said:
                self.progress.job(f"waiting for {len(self.pending())} job(s) held by {who}")
                said = who
            time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def _heartbeat(store: Store, owner: Owner) -> Iterator[None]:
    """Renew ``owner``'s leases every sixth of :data:`LEASE_SECONDS` from a thread, on its own
    connection (the training in the main thread does not stop it)."""
    stop = threading.Event()

    def beat() -> None:
        mine = Store(store.path)
        try:
            while not stop.wait(LEASE_SECONDS / 6):
                with contextlib.suppress(Exception):  # a busy index: the next beat renews them
                    mine.heartbeat(owner)
        finally:
            mine.close()

    thread = threading.Thread(target=beat, name="rotelab-lease-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
