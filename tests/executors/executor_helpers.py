"""Helpers for the executor tests: a real local Ray (two CPUs), CLI processes to kill, stored arrays."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rotelab.store import Store

#: A memorization that trains in seconds: 60 pool examples, small MLPs, a few epochs.
FAST = ["--data", "synthetic", "--train-size", "60", "--model", "mlp", "--width", "16", "--batch-size", "32",
        "--device", "cpu"]
#: What differs between two runs of the same job and is not a result: time and threads used.
TIMINGS = ("seconds", "threads")


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray with two CPUs for the module's tests; yields its address (for CLI
    processes to join with --ray-address), shut down after the module."""
    ray = pytest.importorskip("ray", reason="the Ray tests need Ray: pip install 'rotelab[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def stored_outputs(study_dir: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Every stored job's arrays by key, timings left out (what must be identical across executors)."""
    store = Store.open(study_dir)
    try:
        return {key: {k: v for k, v in store.load(key).items() if k not in TIMINGS} for key, *_ in store.jobs()}
    finally:
        store.close()


def assert_same_outputs(a: dict[str, dict[str, np.ndarray]], b: dict[str, dict[str, np.ndarray]]) -> None:
    """Same jobs, bit-identical arrays."""
    assert sorted(a) == sorted(b)
    for key in a:
        assert sorted(a[key]) == sorted(b[key]), key
        for name in a[key]:
            np.testing.assert_array_equal(a[key][name], b[key][name], err_msg=f"{key}: {name}")


def trained_log(study_dir: str | Path) -> list[tuple]:
    """The store's log: (key, owner, claimed, saved, taken_from), one row per finished training."""
    store = Store.open(study_dir)
    try:
        return store.trained()
    finally:
        store.close()


def start_cli(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    """``rotelab ARGS`` in a fresh interpreter, in its own process group (so a kill takes it whole)."""
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.Popen([sys.executable, "-m", "rotelab", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=env, start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process and everything it started, then reap it (no zombie left)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def wait_for(condition, timeout: float, step: float = 0.02) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return False
