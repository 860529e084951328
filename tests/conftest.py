"""Shared fixtures: small seeded data, an isolated cache, and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rotelab.progress import Progress


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Generated datasets are cached per test session, never in the user's home."""
    cache = tmp_path_factory.getbasetemp() / "rotelab-cache"
    monkeypatch.setenv("ROTELAB_CACHE", str(cache))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``rotelab ARGS`` in a fresh interpreter, as a user would (120 columns unless ``env`` says)."""
    env = {**os.environ, "COLUMNS": "120", **(env or {})}
    return subprocess.run([sys.executable, "-m", "rotelab", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def cli_json(*args: str) -> dict:
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def tree(path: Path) -> list[str]:
    """Every file and folder under ``path`` (empty list when it does not exist)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def run_main(argv: list[str], capsys) -> tuple[int | None, str, str]:
    """``rotelab ARGV`` in this process (``rotelab.cli.main``): (exit code, stdout, stderr)."""
    from rotelab.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


class RecordingProgress(Progress):
    """A silent progress that remembers each ``start(total, cached, n_jobs)`` it was given."""

    def __init__(self):
        self.starts = []

    def start(self, *, total, cached, n_jobs):
        self.starts.append((total, cached, n_jobs))


def random_members(ds, k: int, n_train: int, seed: int = 0):
    """Every example of ``ds`` (pool, then test) and ``k`` members, member i training on its own
    random ``n_train`` of the pool and validating on the rest: (x, y, train, val, test)."""
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    rng = np.random.default_rng(seed)
    train = np.zeros((k, len(y)), bool)
    for i in range(k):
        train[i, rng.permutation(ds.n_train)[:n_train]] = True
    val = np.zeros_like(train)
    val[:, : ds.n_train] = ~train[:, : ds.n_train]
    test = np.zeros(len(y), bool)
    test[ds.n_train:] = True
    return x, y, train, val, test


def tiny_jobs(n: int):
    """``n`` one-epoch jobs of two small MLPs each on 50 synthetic examples, and their Examples:
    the smallest real jobs a driver or store test can train."""
    from rotelab.data.builtin import synthetic
    from rotelab.engine.recipe import Recipe
    from rotelab.engine.train import Members
    from rotelab.models import ModelSpec, build_model
    from rotelab.plan import Examples, Job, ModelRef

    ds = synthetic(n_train=40, n_test=10, n_features=4, n_classes=2, seed=0)
    ex = Examples.of(ds)
    spec = ModelSpec("mlp", width=8).resolved()
    recipe = Recipe(model=spec, epochs=1, batch_size=16, eval_every=0)
    train = np.zeros((2, 50), bool)
    train[:, :30] = True
    ref = ModelRef(lambda: build_model(spec, ds.feature_shape, 2), f"builtin:{spec}")
    return [Job(f"job {j}", recipe, Members(np.array([2 * j, 2 * j + 1]), train, ~train & ~ex.test_mask), j, ref)
            for j in range(n)], ex
