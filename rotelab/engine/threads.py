"""How many CPU threads a job uses: torch's setting less the cores other processes keep busy.

Why this exists: a training step is ~50 small kernels (a 64-member MLP step: each ≤ 1.5 ms),
and every OpenMP kernel ends at a barrier that waits for all its threads. When another
process runs on one of our cores, our thread there is descheduled and each barrier waits a
scheduler slice for it while the others spin: measured on a 2-core machine with one other
busy process, a 5-epoch 64-member MLP job took 51 s on 2 threads vs 3.7 s on 1; on the idle
machine 2 threads took 2.6 s. Results do not depend on the thread count (checked bit for
bit for mlp and cnn), so this only changes speed.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator

import torch

#: A step under this many FLOPs runs on one thread whatever the count: a second only adds
#: waits (a 1-member MLP job: 0.5 s on one thread, 0.7 s on two).
ONE_THREAD_BELOW_FLOPS = 2e7
ENV = "ROTELAB_THREADS"

# cpu_threads' last look: wall time, our CPU time, our share of the 1-minute load average; it
# starts as if this process had been busy since it began (a fresh one has been importing)
_own = [time.perf_counter() - time.process_time(), 0.0, 0.0]


def _others_running() -> int:
    """Runnable tasks on the machine right now that are not threads of this process."""
    with open("/proc/loadavg") as f:  # "2.81 3.01 4.33 3/90 19016": 3 runnable
        total = int(f.read().split()[3].split("/")[0])
    ours = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                ours += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except OSError:  # the thread just ended
            pass
    return total - ours


def _others_busy(seconds: float) -> float:
    """Mean number of other processes' runnable tasks, read every ~2 ms for ``seconds``."""
    reads, end = [], time.perf_counter() + seconds
    while True:
        reads.append(_others_running())
        if time.perf_counter() >= end:
            return sum(reads) / len(reads)
        time.sleep(0.002)


def _own_load() -> float:
    """This process's share of the 1-minute load average, averaged the way the kernel does."""
    wall, cpu = time.perf_counter(), time.process_time()
    decay = math.exp(-(wall - _own[0]) / 60.0)
    _own[:] = wall, cpu, _own[2] * decay + (1 - decay) * (cpu - _own[1]) / max(wall - _own[0], 1e-3)
    return _own[2]


def cpu_threads(step_flops: float | None = None, *, want: int | None = None) -> int:
    """Intra-op threads for a CPU job: at most ``want`` (default: torch's setting), less the
    cores other processes keep busy; ``ROTELAB_THREADS`` overrides the count.

    Others = the mean number of runnable tasks of other processes over 20 ms (/proc), looked
    at for 200 ms more when the 1-minute load average less our own says the machine was busy.
    Not the load average itself: it remembers a process that ended a minute ago, and made
    the next job run on one thread of two. A step under ``ONE_THREAD_BELOW_FLOPS``
    (``step_flops``) runs on one thread.
    """
    if step_flops is not None and step_flops < ONE_THREAD_BELOW_FLOPS:
        return 1
    env = os.environ.get(ENV, "").strip()
    if env.isdigit():
        return max(1, int(env))
    own = _own_load()
    want = want or torch.get_num_threads()
    if want <= 1:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    avg_others = os.getloadavg()[0] - own if hasattr(os, "getloadavg") else 0.0
    try:
        others = _others_busy(0.02)
        if others < 0.1 and avg_others >= 0.1:  # a process that has ended, or one that runs in bursts?
            others = _others_busy(0.2)  # look longer
    except (OSError, ValueError, IndexError):  # no /proc (macOS): the load average alone
        others = avg_others
    # a core counts as taken as soon as others use a tenth of it: a wrong guess costs ~1.4x
    # one way and ~14x the other
    return max(1, min(want, cores - math.ceil(others - 0.1)))


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (None: leave torch's setting), restoring it afterwards."""
    before = torch.get_num_threads()
    try:
        if n is not None:
            torch.set_num_threads(max(1, int(n)))
        yield
    finally:
        torch.set_num_threads(before)


__all__ = ["ENV", "ONE_THREAD_BELOW_FLOPS", "cpu_threads", "torch_threads"]
