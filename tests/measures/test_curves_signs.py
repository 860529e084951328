"""Signs of memorization from learning curves: hand-computed cases."""

import numpy as np
import pytest

from rotelab.measures.curves import Thresholds, loss_gap_widening, memorization_onset, read_signs


def test_onset_is_the_epoch_of_lowest_validation_loss_when_it_then_rises():
    train = np.array([2.0, 1.0, 0.5, 0.2, 0.1])
    val = np.array([2.1, 1.2, 1.0, 1.3, 1.6])
    assert memorization_onset(train, val) == 2


@pytest.mark.parametrize("val", [
    [2.0, 1.5, 1.2, 1.1, 1.0],      # still falling at the end
    [2.0, 1.5, 1.0, 1.01, 1.015],   # rose by 1.5% < 2%: noise, not a sign
])
def test_no_onset_while_validation_loss_holds(val):
    assert memorization_onset(np.linspace(2, 0.1, 5), np.array(val)) is None


def test_no_onset_when_training_loss_stopped_falling_too():
    train = np.array([2.0, 1.0, 0.5, 0.6, 0.7])
    val = np.array([2.0, 1.1, 0.9, 1.0, 1.2])
    assert memorization_onset(train, val) is None


def test_loss_gap_widening_compares_end_with_onset():
    train, val = np.array([1.0, 0.5, 0.1]), np.array([1.0, 0.8, 1.2])
    assert loss_gap_widening(train, val, 1)      # gap 0.3 -> 1.1
    assert not loss_gap_widening(train, val, None)


def test_memorizing_needs_two_of_three_signs():
    e = np.arange(5)
    s = read_signs(train_acc=np.array([.5, .8, .95, .99, 1.0]), val_acc=np.array([.5, .7, .72, .71, .70]),
                   train_loss=2.0 / (e + 1), val_loss=np.array([2.0, 1.2, 1.0, 1.3, 1.6]), test_acc=0.69)
    assert (s.train_high_val_low, s.loss_gap_widening, s.poor_on_new_data) == (True, True, True)
    assert s.verdict == "memorizing" and s.onset == 2 and s.severity == "strong"


def test_healthy_when_validation_keeps_up():
    s = read_signs(train_acc=np.array([.9, .99]), val_acc=np.array([.9, .97]), train_loss=np.array([.3, .05]),
                   val_loss=np.array([.3, .1]), test_acc=0.965)
    assert s.verdict == "healthy" and s.onset is None


def test_underfitting_when_training_accuracy_is_low():
    s = read_signs(train_acc=np.array([.3, .5]), val_acc=np.array([.3, .49]), train_loss=np.array([2., 1.5]),
                   val_loss=np.array([2., 1.5]), test_acc=0.48)
    assert s.verdict == "underfitting"


def test_under_label_noise_fitting_is_judged_on_the_clean_labels():
    """30% flipped: 75% of the given labels fitted can be 95% of the true ones, a model that
    refuses the noise; 'underfitting' would send the user the wrong way."""
    kw = dict(train_acc=np.array([.5, .75]), val_acc=np.array([.5, .93]), train_loss=np.array([2., 1.0]),
              val_loss=np.array([1.0, 0.3]), test_acc=0.93)
    assert read_signs(**kw).verdict == "underfitting"
    assert read_signs(**kw, fit_acc=0.95).verdict == "healthy"
    assert read_signs(**kw, fit_acc=0.6).verdict == "underfitting"


def test_thresholds_are_respected():
    kw = dict(train_acc=np.array([.9, 1.0]), val_acc=np.array([.9, .93]), train_loss=np.array([.3, .01]),
              val_loss=np.array([.3, .2]), test_acc=0.93)
    assert read_signs(**kw).verdict == "memorizing"  # 7-point gaps on validation and test
    assert read_signs(**kw).severity == "mild"
    assert read_signs(**kw, thresholds=Thresholds(strong=0.06)).severity == "strong"
    assert read_signs(**kw, thresholds=Thresholds(gap=0.10)).verdict == "healthy"


# ── a test set from another distribution ───────────────────────────────────────────────
def _old_read_signs(train_acc, val_acc, train_loss, val_loss, test_acc, t=Thresholds()):
    """The verdict as it was before the test-shift check: the reference for unshifted cases."""
    onset = memorization_onset(train_loss, val_loss, rise=t.rise)
    tr, va = float(train_acc[-1]), float(val_acc[-1])
    s1 = tr >= t.fit and tr - va >= t.gap
    s2 = loss_gap_widening(train_loss, val_loss, onset)
    s3 = tr - float(test_acc) >= t.gap
    verdict = "memorizing" if s1 + s2 + s3 >= 2 else "underfitting" if tr < t.fit else "healthy"
    severity = ""
    if verdict == "memorizing":
        severity = "strong" if max(tr - va, tr - float(test_acc)) >= t.strong else "mild"
    return s1, s2, s3, verdict, onset, severity


def _rising():
    """Validation loss bottoms out at epoch 2 and rises 60% while training loss keeps falling."""
    return dict(train_loss=2.0 / (np.arange(5) + 1), val_loss=np.array([2.0, 1.2, 1.0, 1.3, 1.6]))


def test_shifted_test_set_is_named_not_counted_as_memorization():
    # the IDX case: a 2.8-point train−validation gap, but the test set is 12 points below validation
    s = read_signs(train_acc=np.array([.9, 1.0]), val_acc=np.array([.9, .972]), test_acc=0.852, **_rising())
    assert _old_read_signs(np.array([.9, 1.0]), np.array([.9, .972]), test_acc=0.852, **_rising())[3:] == (
        "memorizing", 2, "strong")  # what it said before
    assert s.test_shift and s.verdict == "healthy" and s.severity == ""
    assert (s.train_high_val_low, s.loss_gap_widening, s.poor_on_new_data) == (False, True, False)
    assert s.note == "test set differs from the training distribution (validation 97.2%, test 85.2%)"
    e = s.evidence["test_shift"]
    assert (round(e.value, 6), e.threshold, e.unit) == (12.0, 5.0, "points")
    assert e.text == "validation 97.2% and test 85.2% are 12.0 points apart (> 5)"
    assert s.evidence["poor_on_new_data"].text == (
        "train 100.0% − test 85.2% = 14.8 points ≥ 5; not counted: test set differs from the training distribution")


def test_shift_when_test_is_better_than_validation():
    s = read_signs(train_acc=np.array([.9, 1.0]), val_acc=np.array([.8, .85]), test_acc=0.95, **_rising())
    assert s.test_shift and s.verdict == "memorizing"  # signs 1 and 2 still count
    assert s.severity == "strong"  # from the 15-point validation gap


def test_shift_leaves_the_severity_to_the_validation_gap():
    s = read_signs(train_acc=np.array([.9, 1.0]), val_acc=np.array([.9, .92]), test_acc=0.70, **_rising())
    assert s.test_shift and s.verdict == "memorizing" and s.severity == "mild"  # 8 points, not the test's 30


@pytest.mark.parametrize("test_acc,shifted", [(0.92, False), (0.9201, True), (0.82, False), (0.8199, True)])
def test_shift_needs_more_than_the_threshold(test_acc, shifted):
    kw = dict(train_acc=np.array([.9, 1.0]), val_acc=np.array([.9, .87]), **_rising())
    assert read_signs(test_acc=test_acc, **kw).test_shift == shifted
    assert read_signs(test_acc=test_acc, thresholds=Thresholds(shift=0.2), **kw).test_shift is False


def test_unshifted_verdicts_are_exactly_as_before(rng):
    seen = set()
    for _ in range(400):
        n = int(rng.integers(2, 8))
        train_acc = np.sort(rng.uniform(0.5, 1.0, n))
        val_acc = train_acc - rng.uniform(0, 0.2, n)
        test_acc = float(np.clip(val_acc[-1] + rng.uniform(-0.05, 0.05), 0, 1))
        train_loss = np.sort(rng.uniform(0.01, 2.0, n))[::-1]
        val_loss = rng.uniform(0.3, 2.0, n)
        s = read_signs(train_acc=train_acc, val_acc=val_acc, train_loss=train_loss, val_loss=val_loss,
                       test_acc=test_acc)
        assert not s.test_shift and s.note == ""
        old = _old_read_signs(train_acc, val_acc, train_loss, val_loss, test_acc)
        assert (s.train_high_val_low, s.loss_gap_widening, s.poor_on_new_data, s.verdict, s.onset, s.severity) == old
        seen.add((s.verdict, s.severity))
    assert seen == {("memorizing", "strong"), ("memorizing", "mild"), ("healthy", ""), ("underfitting", "")}


# ── each sign's deciding number ────────────────────────────────────────────────────────
def test_evidence_of_a_memorizing_model():
    s = read_signs(train_acc=np.array([.5, .8, .95, .99, 1.0]), val_acc=np.array([.5, .7, .72, .71, .70]),
                   test_acc=0.69, **_rising())
    e = s.evidence
    assert set(e) == {"train_high_val_low", "loss_gap_widening", "poor_on_new_data", "test_shift"}
    assert e["train_high_val_low"].text == "train 100.0% ≥ 90% and gap to validation 30.0 points ≥ 5"
    assert (round(e["train_high_val_low"].value, 6), e["train_high_val_low"].threshold) == (30.0, 5.0)
    assert e["loss_gap_widening"].text == ("validation loss ends 60.0% above its minimum (≥ 2%) while training loss "
                                           "fell; validation − training loss 0.333 → 1.200")
    assert (round(e["loss_gap_widening"].value, 6), e["loss_gap_widening"].threshold) == (60.0, 2.0)
    assert e["poor_on_new_data"].text == "train 100.0% − test 69.0% = 31.0 points ≥ 5"
    assert e["test_shift"].text == "validation 70.0% and test 69.0% are 1.0 points apart (≤ 5)"


def test_evidence_of_signs_that_are_absent():
    s = read_signs(train_acc=np.array([.3, .5]), val_acc=np.array([.3, .49]), train_loss=np.array([2., 1.5]),
                   val_loss=np.array([2., 1.5]), test_acc=0.48)
    assert s.evidence["train_high_val_low"].text == "train 50.0% < 90%: the model does not fit its data"
    assert (s.evidence["train_high_val_low"].value, s.evidence["train_high_val_low"].unit) == (50.0, "%")
    assert s.evidence["loss_gap_widening"].text == "validation loss is lowest at the last epoch"
    assert s.evidence["poor_on_new_data"].text == "train 50.0% − test 48.0% = 2.0 points < 5"
    healthy = read_signs(train_acc=np.array([.9, .99]), val_acc=np.array([.9, .97]), train_loss=np.array([.3, .05]),
                         val_loss=np.array([.3, .1]), test_acc=0.965)
    assert healthy.evidence["train_high_val_low"].text == "train 99.0% ≥ 90% and gap to validation 2.0 points < 5"


@pytest.mark.parametrize("train_loss,val_loss,text", [
    ([2.0, 1.0, 0.5], [2.0, 1.0, 1.015], "validation loss ends 1.5% above its minimum (< 2%)"),
    ([2.0, 1.0, 1.2], [2.0, 1.0, 1.5], "validation loss ends 50.0% above its minimum (≥ 2%) but training loss "
                                       "stopped falling too"),
    ([2.0, 0.5, 0.1], [2.0, 1.0, 1.2], "validation loss ends 20.0% above its minimum (≥ 2%) while training loss "
                                       "fell; validation − training loss 0.500 → 1.100"),
    ([2.0], [2.0], "fewer than 2 epochs of validation loss: no rise to see"),
])
def test_loss_sign_evidence(train_loss, val_loss, text):
    s = read_signs(train_acc=np.ones(len(val_loss)), val_acc=np.ones(len(val_loss)), train_loss=np.array(train_loss),
                   val_loss=np.array(val_loss), test_acc=1.0)
    assert s.evidence["loss_gap_widening"].text == text
    assert s.loss_gap_widening == ("while training loss fell" in text)


def test_a_gap_within_the_noise_of_few_examples_is_not_a_shift():
    """7 points apart on 60 validation and 100 test examples is chance (z ≈ 1); on 1,000 and
    2,000 examples it is not (z ≈ 4)."""
    kw = dict(train_acc=np.array([.9, 1.0]), val_acc=np.array([.7, .77]), test_acc=0.70, **_rising())
    few = read_signs(**kw, n_val=60, n_test=100)
    many = read_signs(**kw, n_val=1000, n_test=2000)
    assert read_signs(**kw).test_shift  # without the counts: the 5-point rule alone
    assert not few.test_shift and few.note == ""
    assert many.test_shift and many.note.startswith("test set differs")
    assert few.evidence["test_shift"].text == ("validation 77.0% and test 70.0% are 7.0 points apart (> 5), "
                                               "z = 1.0 ≤ 2.58: within the noise of so few examples, not counted "
                                               "as a shift")
    assert many.evidence["test_shift"].text == "validation 77.0% and test 70.0% are 7.0 points apart (> 5), z = 4.2 > 2.58"
    assert few.poor_on_new_data  # a test gap that is not a shift counts as sign 3 again


def test_shift_z_against_a_slow_reference():
    """The z statistic against scipy's unpooled two-sample z (difference over the root of the
    summed binomial variances), and its edge cases."""
    from scipy import stats

    from rotelab.measures.curves import shift_z

    for va, te, nv, nt in [(0.77, 0.70, 60, 100), (0.5, 0.9, 30, 3000), (0.99, 0.95, 500, 500)]:
        se = np.sqrt(va * (1 - va) / nv + te * (1 - te) / nt)
        p_two_sided = 2 * stats.norm.sf(abs(va - te) / se)
        assert np.isclose(2 * stats.norm.sf(shift_z(va, te, nv, nt)), p_two_sided)
    assert shift_z(1.0, 1.0, 10, 10) == 0.0
    assert shift_z(1.0, 0.0, 10, 10) == float("inf")
