"""`python -m bench --quick` keeps running: every part, both output files, the goals table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_runs_every_part_and_writes_both_files(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cores" in proc.stderr and "torch" in proc.stderr  # the machine is printed first
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["quick"] and {"vs_loop", "vs_sklearn", "vs_peak", "memorization", "peak", "realdata", "precision"} <= set(res)
    assert all(r["median_s"] > 0 for r in res["realdata"]["startup"])
    assert {r["model"] for r in res["vs_loop"]} == {"mlp", "cnn"}
    for r in res["vs_loop"]:
        assert r["vectorized"] and r["vec_wall"] > 0 and r["loop_wall"] > 0
    assert all("error" not in r for r in res["vs_sklearn"] if r["who"].startswith(("rotelab engine", "scikit")))
    assert res["memorization"]["scored"] > 0 and res["peak"]["peak_flops"] > 0
    md = (tmp_path / "results.md").read_text()
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## Against the goals"):
        assert heading in md
