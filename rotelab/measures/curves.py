"""Signs of memorization read off learning curves (mean over members, per epoch).

The three signs every practitioner checks: high training accuracy with low validation
accuracy, a widening gap between training and validation loss, and poor accuracy on
new (test) data. Inputs are 1-D arrays over recorded epochs, shape (n_epochs,).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VERDICTS = ("memorizing", "healthy", "underfitting")


@dataclass(frozen=True)
class Thresholds:
    """When a sign counts. Accuracy gaps are absolute (0.05 = 5 points)."""

    gap: float = 0.05  # train − validation (or − test) accuracy that counts as a gap
    strong: float = 0.10  # a memorizing model with a gap this large is memorizing strongly
    fit: float = 0.90  # training accuracy below this = the model does not fit its data
    rise: float = 0.02  # relative rise of validation loss above its minimum that counts


def memorization_onset(train_loss: np.ndarray, val_loss: np.ndarray, *, rise: float = 0.02) -> int | None:
    """Index of the epoch after which validation loss stops falling while training loss still
    falls; None if validation loss ends within ``rise`` (relative) of its minimum.

    >>> memorization_onset(np.array([3., 2., 1., .5, .2]), np.array([3., 2., 1.5, 1.8, 2.4]))
    2
    >>> memorization_onset(np.array([3., 2., 1.]), np.array([3., 2., 1.5])) is None
    True
    """
    train_loss, val_loss = np.asarray(train_loss, float), np.asarray(val_loss, float)
    if len(val_loss) < 2 or not np.isfinite(val_loss).any():
        return None
    best = int(np.nanargmin(val_loss))
    if best == len(val_loss) - 1:
        return None
    rose = val_loss[-1] > val_loss[best] * (1 + rise) + 1e-12
    still_fitting = train_loss[-1] < train_loss[best]
    return best if (rose and still_fitting) else None


def loss_gap_widening(train_loss: np.ndarray, val_loss: np.ndarray, onset: int | None) -> bool:
    """True when validation − training loss at the end is larger than at the onset epoch."""
    if onset is None:
        return False
    gap = np.asarray(val_loss, float) - np.asarray(train_loss, float)
    return bool(gap[-1] > gap[onset] + 1e-12)


@dataclass(frozen=True)
class Signs:
    """The three signs, each True when present, and the verdict drawn from them."""

    train_high_val_low: bool
    loss_gap_widening: bool
    poor_on_new_data: bool
    verdict: str
    onset: int | None
    severity: str  # "strong" or "mild" for a memorizing model, "" otherwise


def read_signs(
    *,
    train_acc: np.ndarray,
    val_acc: np.ndarray,
    train_loss: np.ndarray,
    val_loss: np.ndarray,
    test_acc: float,
    thresholds: Thresholds = Thresholds(),
) -> Signs:
    """Verdict: ``memorizing`` when at least two of the three signs show; else ``underfitting``
    when the final training accuracy is below ``thresholds.fit``; else ``healthy``. A memorizing
    model is ``strong``ly so when its validation or test gap reaches ``thresholds.strong``."""
    onset = memorization_onset(train_loss, val_loss, rise=thresholds.rise)
    tr, va = float(train_acc[-1]), float(val_acc[-1])
    s1 = tr >= thresholds.fit and tr - va >= thresholds.gap
    s2 = loss_gap_widening(train_loss, val_loss, onset)
    s3 = tr - float(test_acc) >= thresholds.gap
    if s1 + s2 + s3 >= 2:
        verdict = "memorizing"
    elif tr < thresholds.fit:
        verdict = "underfitting"
    else:
        verdict = "healthy"
    severity = ""
    if verdict == "memorizing":
        severity = "strong" if max(tr - va, tr - float(test_acc)) >= thresholds.strong else "mild"
    return Signs(s1, s2, s3, verdict, onset, severity)
