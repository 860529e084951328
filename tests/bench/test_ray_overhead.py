"""bench/ray_overhead.py: the scaling estimate against hand computation; a tiny real run (slow)."""

from __future__ import annotations

import pytest

from bench.ray_overhead import markdown, ray_overhead, scaling


def test_scaling_by_hand():
    rows = scaling(2.0, 0.5, 10, gpus=(1, 4, 16))
    assert [r["seconds"] for r in rows] == [25.0, 7.5, 2.5]  # ceil(10/N) rounds of 2.5 s
    assert [round(r["speedup"], 3) for r in rows] == [0.8, 2.667, 8.0]  # against 10 × 2 s


@pytest.mark.slow
def test_a_tiny_run_is_equal_on_both_executors_and_renders():
    pytest.importorskip("ray")
    res = ray_overhead(models=32, chunk=16, epochs=1, workers=2)
    assert res["slots"] == 2 and res["ray_warm"]["jobs"] == res["local"]["jobs"] == 2
    assert res["ray_cold"]["equal_to_local"] and res["ray_warm"]["equal_to_local"]
    text = markdown(res)
    assert "| Ray, 2 workers, warm |" in text and "T(N) = ceil(J / N)" in text and "| 32 |" in text
