"""What ``compare`` and ``sweep`` share: per-fold metrics of a k-fold job and their summaries."""

from __future__ import annotations

import math

import numpy as np

from rotelab.measures.folds import HOLDOUT_FRACTION, fold_summary
from rotelab.measures.noise import clean_accuracy, masked_mean, noisy_labels_memorized
from rotelab.plan import Examples, Folds


def fold_metrics(out: dict[str, np.ndarray], f: Folds, ex: Examples, noisy: bool) -> dict[str, np.ndarray]:
    """Per-member (fold) values, each (K,), from the job's final per-example outputs.

    Training metrics use the labels trained on (flipped ones included); validation accuracy
    uses the clean labels of the whole fold, validation loss the fold's unflipped examples
    (there given = clean; ``loss`` is only recorded against the given label).
    """
    test = np.broadcast_to(ex.test_mask, f.train.shape)
    m = {
        "train_acc": masked_mean(out["correct"], f.train),
        "train_loss": masked_mean(out["loss"], f.train),
        "val_acc": clean_accuracy(out["pred"], ex.clean, f.val),
        "val_loss": masked_mean(out["loss"], f.engine_val),
        "test_acc": masked_mean(out["correct"], test),
    }
    m["acc_gap"] = m["train_acc"] - m["val_acc"]
    m["loss_gap"] = m["val_loss"] - m["train_loss"]
    if noisy:
        m["noisy_memorized"] = noisy_labels_memorized(out["pred"], ex.y, ex.clean, f.train)
    return m


#: Held-out accuracy less than this far above always guessing the most common class: near chance.
NEAR_CHANCE_POINTS = 0.10


def majority_rate(y: np.ndarray) -> float:
    """The accuracy of always guessing the most common class of ``y`` (n,)."""
    return float(np.bincount(np.asarray(y)).max() / len(y))


def paired_ratio(folds: int) -> float:
    """n_test / n_train of one split, for the Nadeau & Bengio correction (``folds == 1``: the
    80/20 split)."""
    return 1.0 / (folds - 1) if folds > 1 else HOLDOUT_FRACTION / (1.0 - HOLDOUT_FRACTION)


def mean_ci(values: np.ndarray, test_train_ratio: float | None = None,
            bounds: tuple[float, float] | None = (0.0, 1.0)) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high), 95% Student-t across folds, Nadeau–Bengio corrected when
    ``test_train_ratio`` is given (k-fold: 1 / (k − 1)); NaN when a fold has no value.

    ``bounds``: the range the measure cannot leave (a fraction: [0, 1]; a gap in accuracy:
    [−1, 1]; ``None`` for a loss). The t interval is cut to it, since a symmetric interval of a
    few folds near 100% reaches past it (an accuracy of 107% is not a possible value)."""
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).all():
        return math.nan, math.nan, math.nan
    s = fold_summary(v, test_train_ratio=test_train_ratio)
    lo, hi = s.ci_low, s.ci_high
    if bounds is not None and s.n > 1:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return s.mean, lo, hi
