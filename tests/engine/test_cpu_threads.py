"""How many threads a CPU job takes: fewer when another process keeps a core busy."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rotelab.engine.threads import cpu_threads

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def test_small_steps_and_the_override(monkeypatch):
    assert cpu_threads(1e6, want=8) == 1  # a tiny step: a second thread only adds waits
    monkeypatch.setenv("ROTELAB_THREADS", "3")
    assert cpu_threads(1e9, want=8) == 3


@pytest.mark.skipif(CORES < 2 or not os.path.exists("/proc/loadavg"), reason="needs 2 cores and /proc")
def test_a_busy_process_takes_a_core(monkeypatch):
    monkeypatch.delenv("ROTELAB_THREADS", raising=False)
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 20: pass"])
    try:
        time.sleep(0.5)
        assert cpu_threads(1e9, want=CORES) <= CORES - 1
    finally:
        busy.kill()
        busy.wait()
