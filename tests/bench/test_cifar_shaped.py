"""The CIFAR-shaped benchmark runs end to end at a tiny size and says what it measured."""

from __future__ import annotations

import numpy as np
import pytest

from bench.cifar_shaped import SIZES, Size, cifar_like, conv_net, digits_32, report, run
from bench.machine import threads
from rotelab.errors import InvalidInputError


def test_tiny_run_gives_a_row_per_model_and_k_with_positive_rates():
    size = Size(n_train=16, n_test=4, batch=4, epochs=1, ks=(1, 2), loop_max=1, ceiling_images=64)
    with threads(1):  # tiny kernels: a second thread only waits at barriers (see rotelab's cpu_threads)
        rows = run("cpu", size=size, models={"tiny": lambda: conv_net((4, 8))})
    assert [(r["model"], r["k"]) for r in rows] == [("tiny", 1), ("tiny", 2)]
    for r in rows:
        assert r["vectorized"] and r["engine_precision"] == "fp32" and r["best_loop"] in ("fp32", "fp32+cl")
        assert r["best_loop_rate"] == max(r["loop_rate_fp32"], r["loop_rate_fp32+cl"])
        assert r["engine_rate"] > 0 and r["ceiling_fp32"] > 0 and r["ceiling_fp32+cl"] > 0
        assert r["ratio"] == pytest.approx(r["engine_rate"] / r["best_loop_rate"])
        assert "ceiling_bf16+cl" not in r  # bf16 + channels_last loops only where they can pay: CUDA
    md = report({"machine": {"date": "d", "cpu": "c", "cores": 2, "torch": "t", "device": "cpu", "gpu": None,
                             "engine_threads": 1, "load_at_start": 0.0, "git_commit": ""},
                 "size": size.__dict__, "precision": "fp32", "rows": rows, "load_at_end": 0.0})
    assert md.count("| tiny |") == 2


def test_bad_precision_is_refused():
    with pytest.raises(InvalidInputError, match="precision must be one of fp32, bf16, got 'fp16'"):
        run("cpu", size=SIZES["quick"], precision="fp16")


def test_data_is_cifar_shaped_and_seeded():
    a, b = cifar_like(40, 10, seed=3), cifar_like(40, 10, seed=3)
    assert a.feature_shape == (3, 32, 32) and a.n_train == 40 and a.n_test == 10 and a.n_classes == 10
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    d = digits_32()
    assert d.feature_shape == (1, 32, 32) and d.n_train + d.n_test == 1797
