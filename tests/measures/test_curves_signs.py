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


def test_thresholds_are_respected():
    kw = dict(train_acc=np.array([.9, 1.0]), val_acc=np.array([.9, .93]), train_loss=np.array([.3, .01]),
              val_loss=np.array([.3, .2]), test_acc=0.93)
    assert read_signs(**kw).verdict == "memorizing"  # 7-point gaps on validation and test
    assert read_signs(**kw).severity == "mild"
    assert read_signs(**kw, thresholds=Thresholds(strong=0.06)).severity == "strong"
    assert read_signs(**kw, thresholds=Thresholds(gap=0.10)).verdict == "healthy"
