"""``rotelab.studies.cv.mean_ci``: the interval a table shows stays inside the values the measure can take."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rotelab.studies.cv import mean_ci


def test_an_accuracy_interval_near_100_percent_is_cut_at_100():
    v = np.array([1.0, 1.0, 0.9])
    mean, lo, hi = mean_ci(v, 0.5)
    half = stats.t.ppf(0.975, 2) * v.std(ddof=1) * math.sqrt(1 / 3 + 0.5)  # the uncut Student-t half-width
    assert mean == pytest.approx(0.9667, abs=1e-4)
    assert lo == pytest.approx(mean - half) and lo < 0.9
    assert hi == 1.0 and mean + half > 1.0  # cut: the uncut interval reaches 119%


def test_a_gap_is_cut_at_minus_one_and_one_and_a_loss_not_at_all():
    v = np.array([-0.99, -0.7, -0.98])
    assert mean_ci(v, None, (-1.0, 1.0))[1] == -1.0
    assert mean_ci(v, None, None)[1] < -1.0
    assert mean_ci(v)[1] == 0.0  # the default is a fraction's range


def test_an_interval_inside_the_bounds_is_the_t_interval():
    v = np.array([0.6, 0.7, 0.65, 0.62])
    res = stats.ttest_1samp(v, 0.0).confidence_interval(0.95)
    mean, lo, hi = mean_ci(v)
    assert (lo, hi) == pytest.approx((res.low, res.high)) and mean == pytest.approx(v.mean())


def test_one_fold_or_a_missing_value_gives_no_interval():
    assert all(math.isnan(x) for x in mean_ci(np.array([0.8, np.nan])))
    mean, lo, hi = mean_ci(np.array([0.8]))
    assert mean == 0.8 and math.isnan(lo) and math.isnan(hi)


def test_the_terminal_shows_a_cut_interval_by_its_ends_and_an_uncut_one_as_plus_minus():
    from rotelab.commands.options import plus_minus

    mean, lo, hi = mean_ci(np.array([1.0, 1.0, 0.9]), 0.5)
    row = {"val_acc": mean, "val_acc_ci_low": lo, "val_acc_ci_high": hi}
    assert plus_minus(row, "val_acc") == f" [{100 * lo:.1f}–100.0]"
    mean, lo, hi = mean_ci(np.array([0.6, 0.7, 0.65, 0.62]))
    row = {"val_acc": mean, "val_acc_ci_low": lo, "val_acc_ci_high": hi}
    assert plus_minus(row, "val_acc") == f" ±{100 * (hi - mean):.1f}"
    assert plus_minus({"g": 0.1, "g_ci_low": math.nan, "g_ci_high": math.nan}, "g") == ""
