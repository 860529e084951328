"""Which technique compare recommends, and the sentence it says: ties do not depend on the
order of --techniques, and a recommendation survives Holm's adjustment for testing every cell
against the baseline (a user trial found 'no technique beats baseline' printed beside p = 0.011,
because only the first of two tied cells was tested)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from rotelab.measures.folds import holm_adjusted
from rotelab.studies.compare import _best, _recommended
from rotelab.studies.compare_verdict import verdict


def _holm_reference(p: list[float]) -> list[float]:
    """Holm by its definition: reject H_(i) at level a iff p_(j) <= a / (m - j + 1) for all j <= i;
    the adjusted p is the smallest such a, searched over a fine grid of candidates."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for rank, i in enumerate(order):
        out[i] = min(1.0, max((m - j) * p[order[j]] for j in range(rank + 1)))
    return out


@pytest.mark.parametrize("p", [[0.01, 0.04, 0.03], [0.0107, 0.0122, 0.0139, 0.066, 0.093], [0.5, 0.2, 0.9, 0.01]])
def test_holm_matches_its_definition(p):
    np.testing.assert_allclose(holm_adjusted(p), _holm_reference(p))


def test_holm_leaves_untested_cells_out_of_the_family():
    adj = holm_adjusted([0.02, float("nan"), 0.03])
    assert math.isnan(adj[1]) and adj[0] == pytest.approx(0.04) and adj[2] == pytest.approx(0.04)


def _table(rows: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    t = pd.DataFrame(rows, columns=["technique", "val_acc", "p_value", "delta_val_acc"])
    tested = t["technique"] != "baseline"
    t["p_holm"] = np.nan
    t.loc[tested, "p_holm"] = holm_adjusted(t.loc[tested, "p_value"].to_numpy())
    return t


TRIAL = [("baseline", 0.7533, 1.0, 0.0), ("dropout", 0.88, 0.066, 0.127), ("augment", 0.88, 0.0107, 0.127),
         ("l2", 0.80, 0.2, 0.05)]


def test_a_tie_goes_to_the_smaller_p_whatever_the_order():
    for order in itertools.permutations(TRIAL):
        t = _table(list(order))
        base = list(t["technique"]).index("baseline")
        assert t.iloc[_best(t)]["technique"] == "augment"
        # 3 tests: augment's 0.0107 becomes 0.032 after Holm, still < 0.05
        assert _recommended(t, _best(t), base) == "augment"


def test_a_cell_that_ties_the_untested_baseline_does_not_take_best_from_it():
    """The baseline has no p-value of its own (NaN, not a test against itself); a cell that
    trained to the same numbers (p = 1) ties it, and the tie goes to the earlier row."""
    t = _table([("baseline", 0.80, np.nan, 0.0), ("l2=1.0", 0.80, 1.0, 0.0), ("dropout", 0.70, 0.01, -0.1)])
    assert t.iloc[_best(t)]["technique"] == "baseline" and _recommended(t, _best(t), 0) is None


def test_a_significant_cell_is_recommended_even_when_another_has_the_highest_mean():
    t = _table([("baseline", 0.75, 1.0, 0.0), ("a", 0.90, 0.30, 0.15), ("b", 0.85, 0.004, 0.10)])
    assert t.iloc[_best(t)]["technique"] == "a" and _recommended(t, _best(t), 0) == "b"
    text = verdict(t.to_dict("records"), "baseline", "b", "a")
    assert text.startswith("b beats baseline by +10.0 points (p = 0.004, 0.008 after Holm's adjustment for 2 tests)")
    assert text.endswith("the highest mean is a, not significantly better")


def test_a_p_that_does_not_survive_the_adjustment_is_said_so():
    t = _table([("baseline", 0.75, 1.0, 0.0), *[(f"t{i}", 0.85, p, 0.1) for i, p in
                                                  enumerate([0.0107, 0.0122, 0.0139, 0.066, 0.093])]])
    assert _recommended(t, _best(t), 0) is None
    text = verdict(t.to_dict("records"), "baseline", None, "t0")
    assert "once the 5 tests are adjusted: t0 has p = 0.0107, 0.0535 after Holm's adjustment" in text


def test_one_split_has_no_test():
    rows = [dict(technique="baseline", p_value=float("nan")), dict(technique="l2", p_value=float("nan"))]
    assert verdict(rows, "baseline", None, "l2").startswith("one split per cell: no test against baseline")
    assert verdict(rows, None, "l2", "l2") == ""


def test_equal_counts_whose_float_means_differ_in_the_last_bit_are_a_tie():
    """259 of 300 either way: means summed in another order differ by 2e-16; the smaller p wins."""
    from rotelab.studies.cv import mean_ci

    a = mean_ci(np.array([56, 45, 53, 48, 57]) / 60)[0]
    c = mean_ci(np.array([52, 52, 53, 48, 54]) / 60)[0]
    t = _table([("baseline", 0.70, 1.0, 0.0), ("A", a, 0.001, 0.16), ("C", c, 0.04, 0.16)])
    assert t.iloc[_best(t)]["technique"] == "A"


def test_the_sentence_names_every_cell_that_survives_and_every_worse_one():
    t = _table([("baseline", 0.75, 1.0, 0.0), ("a", 0.90, 0.001, 0.15), ("b", 0.85, 0.004, 0.10),
                ("c", 0.60, 0.002, -0.15)])
    text = verdict(t.to_dict("records"), "baseline", "a", "a")
    assert text.startswith("a beats baseline by +15.0 points")
    assert "also significantly better, with a lower mean: b (+10.0, Holm p = 0.004)" in text
    assert text.endswith("significantly worse than baseline: c")
