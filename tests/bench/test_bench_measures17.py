"""`python -m bench.rmia --quick` and `python -m bench.label_issues --quick` keep running and
write their tables (tiny models: the numbers mean nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_quick(module: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ROTELAB_BENCH_CACHE": str(out / "cache")}
    return subprocess.run([sys.executable, "-m", module, "--quick", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_quick_rmia_bench_writes_its_table(tmp_path):
    proc = run_quick("bench.rmia", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "results_rmia_quick.json").read_text())
    assert [s["run"]["data"] for s in res["settings"]] == ["mnist1d", "digits"]
    assert res["a"] in (0.0, 0.3) and res["goals"]
    md = (tmp_path / "results_rmia_quick.md").read_text()
    assert "RMIA offline" in md and "## Against the goal" in md


@pytest.mark.slow
def test_quick_label_bench_writes_its_table(tmp_path):
    pytest.importorskip("cleanlab")
    proc = run_quick("bench.label_issues", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "results_labels_quick.json").read_text())
    assert res["tuning"]["data"] == "digits" and len(res["summaries"]) == 1
    md = (tmp_path / "results_labels_quick.md").read_text()
    assert "rotelab label_issue" in md and "## Against the goals" in md
