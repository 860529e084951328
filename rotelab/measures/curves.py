"""Signs of memorization read off learning curves (mean over members, per epoch).

The three signs every practitioner checks: high training accuracy with low validation
accuracy, a widening gap between training and validation loss, and poor accuracy on
new (test) data. Inputs are 1-D arrays over recorded epochs, shape (n_epochs,).

A test set from another distribution than the training data (validation and test accuracy
far apart) is named as such, and its gap is not counted as memorization. Every sign carries
the number that decided it and its threshold (:class:`Evidence`), accuracies in percent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

VERDICTS = ("memorizing", "healthy", "underfitting")


@dataclass(frozen=True)
class Thresholds:
    """When a sign counts. Accuracy gaps are absolute (0.05 = 5 points)."""

    gap: float = 0.05  # train − validation (or − test) accuracy that counts as a gap
    strong: float = 0.10  # a memorizing model with a gap this large is memorizing strongly
    fit: float = 0.90  # training accuracy below this = the model does not fit its data
    rise: float = 0.02  # relative rise of validation loss above its minimum that counts
    shift: float = 0.05  # validation and test accuracy further apart than this: the test set differs
    shift_z: float = 2.58  # ... and further apart than sampling noise explains (two-sided p < 0.01)


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


#: The note a verdict carries when validation and test accuracy disagree.
TEST_SHIFT_NOTE = "test set differs from the training distribution"


@dataclass(frozen=True)
class Evidence:
    """The number that decided one sign, its threshold, and a line saying so (accuracies in %).

    ``value`` and ``threshold`` are in ``unit``: "points" for accuracy gaps (percentage
    points), "%" for an accuracy or a relative rise of validation loss."""

    value: float
    threshold: float
    unit: str
    text: str


@dataclass(frozen=True)
class Signs:
    """The three signs, each True when present, and the verdict drawn from them.

    ``test_shift`` is True when validation and test accuracy are more than
    ``Thresholds.shift`` apart, and (when the example counts are known) further apart than
    sampling noise explains: the test set then comes from another distribution, its gap is
    not memorization, and ``poor_on_new_data`` is False (not counted) whatever the test gap;
    ``note`` says so in one line. ``evidence`` maps each sign's name
    (``train_high_val_low``, ``loss_gap_widening``, ``poor_on_new_data``, ``test_shift``) to
    its :class:`Evidence`.
    """

    train_high_val_low: bool
    loss_gap_widening: bool
    poor_on_new_data: bool
    verdict: str
    onset: int | None
    severity: str  # "strong" or "mild" for a memorizing model, "" otherwise
    test_shift: bool = False
    note: str = ""  # "" or TEST_SHIFT_NOTE with the two accuracies
    evidence: dict[str, Evidence] = field(default_factory=dict, hash=False)


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def _fit_gap_evidence(tr: float, va: float, t: Thresholds, fit_acc: float | None = None) -> Evidence:
    """Sign 1: training accuracy high and validation accuracy ``t.gap`` below it. Under label
    noise (``fit_acc``: accuracy on the clean training labels) a low ``tr`` means the model
    refuses the flipped labels, which is not failing to fit its data."""
    gap, fit, need = 100 * (tr - va), f"{100 * t.fit:g}%", f"{100 * t.gap:g}"
    if tr < t.fit:
        why = ("the model does not fit its data" if fit_acc is None else
               f"on the labels trained on; {_pct(fit_acc)} on their clean labels: it "
               + ("does not fit the flipped labels" if fit_acc >= t.fit else "does not fit its data"))
        return Evidence(100 * tr, 100 * t.fit, "%", f"train {_pct(tr)} < {fit} {why}" if fit_acc is not None
                        else f"train {_pct(tr)} < {fit}: {why}")
    cmp = "≥" if tr - va >= t.gap else "<"
    text = f"train {_pct(tr)} ≥ {fit} and gap to validation {gap:.1f} points {cmp} {need}"
    return Evidence(gap, 100 * t.gap, "points", text)


def _loss_gap_evidence(train_loss: np.ndarray, val_loss: np.ndarray, onset: int | None, t: Thresholds) -> Evidence:
    """Sign 2: validation loss rose above its minimum while training loss fell; the loss gap widened."""
    need = f"{100 * t.rise:g}%"
    if len(val_loss) < 2 or not np.isfinite(val_loss).any():
        return Evidence(float("nan"), 100 * t.rise, "%", "fewer than 2 epochs of validation loss: no rise to see")
    best = int(np.nanargmin(val_loss))
    if best == len(val_loss) - 1:
        return Evidence(0.0, 100 * t.rise, "%", "validation loss is lowest at the last epoch")
    rise = 100 * (val_loss[-1] / val_loss[best] - 1) if val_loss[best] > 0 else 0.0
    said = f"validation loss ends {rise:.1f}% above its minimum"
    if not val_loss[-1] > val_loss[best] * (1 + t.rise) + 1e-12:  # the test memorization_onset makes
        return Evidence(rise, 100 * t.rise, "%", f"{said} (< {need})")
    if onset is None:
        return Evidence(rise, 100 * t.rise, "%", f"{said} (≥ {need}) but training loss stopped falling too")
    gap = val_loss - train_loss  # validation rose and training fell since the onset: the gap widened
    text = (f"{said} (≥ {need}) while training loss fell; "
            f"validation − training loss {gap[onset]:.3f} → {gap[-1]:.3f}")
    return Evidence(rise, 100 * t.rise, "%", text)


def shift_z(va: float, te: float, n_val: float, n_test: float) -> float:
    """Two-proportion z statistic of validation accuracy ``va`` on ``n_val`` examples against
    test accuracy ``te`` on ``n_test`` (unpooled standard error; a difference with no spread,
    such as 100% against 100%, gives 0, and a real one with none gives inf)."""
    se = np.sqrt(va * (1 - va) / max(n_val, 1) + te * (1 - te) / max(n_test, 1))
    if se == 0:
        return 0.0 if va == te else float("inf")
    return float(abs(va - te) / se)


def _test_evidence(tr: float, va: float, te: float, shifted: bool, t: Thresholds,
                   z: float | None) -> tuple[Evidence, Evidence]:
    """Sign 3 (train − test gap) and the test-shift check (validation vs test)."""
    gap, apart = 100 * (tr - te), 100 * abs(va - te)
    cmp = "≥" if tr - te >= t.gap else "<"
    text = f"train {_pct(tr)} − test {_pct(te)} = {gap:.1f} points {cmp} {100 * t.gap:g}"
    if shifted:
        text += f"; not counted: {TEST_SHIFT_NOTE}"
    shift_text = (f"validation {_pct(va)} and test {_pct(te)} are {apart:.1f} points apart "
                  f"({'>' if apart > 100 * t.shift + 1e-7 else '≤'} {100 * t.shift:g})")
    if z is not None and apart > 100 * t.shift + 1e-7:
        shift_text += (f", z = {z:.1f} {'>' if shifted else '≤'} {t.shift_z:g}" +
                       ("" if shifted else ": within the noise of so few examples, not counted as a shift"))
    shift = Evidence(apart, 100 * t.shift, "points", shift_text)
    return Evidence(gap, 100 * t.gap, "points", text), shift


def read_signs(
    *,
    train_acc: np.ndarray,
    val_acc: np.ndarray,
    train_loss: np.ndarray,
    val_loss: np.ndarray,
    test_acc: float,
    thresholds: Thresholds = Thresholds(),
    n_val: float | None = None,
    n_test: float | None = None,
    fit_acc: float | None = None,
) -> Signs:
    """Verdict: ``memorizing`` when at least two of the three signs show; else ``underfitting``
    when the final training accuracy is below ``thresholds.fit``; else ``healthy``. Under label
    noise pass ``fit_acc``, the final training accuracy on the clean labels: a model that fits
    the true labels of its training set but refuses the flipped ones is not underfitting. A memorizing
    model is ``strong``ly so when its validation or test gap reaches ``thresholds.strong``.

    When final validation and test accuracy are more than ``thresholds.shift`` apart, the test
    set comes from another distribution: sign 3 (and the test gap in the severity) is not
    counted, ``test_shift`` is True and ``note`` says "test set differs from the training
    distribution". With ``n_val`` and ``n_test`` (the examples each accuracy is measured on)
    the gap must also exceed sampling noise (``thresholds.shift_z``): on 60 validation
    examples a 6-point difference is chance. Each sign's deciding number and threshold are in
    ``evidence``.
    """
    t = thresholds
    onset = memorization_onset(train_loss, val_loss, rise=t.rise)
    tr, va, te = float(train_acc[-1]), float(val_acc[-1]), float(test_acc)
    z = None if n_val is None or n_test is None else shift_z(va, te, n_val, n_test)
    shift = abs(va - te) > t.shift + 1e-9 and (z is None or z > t.shift_z)  # exactly 5 points is not "more than 5"
    s1 = tr >= t.fit and tr - va >= t.gap
    s2 = loss_gap_widening(train_loss, val_loss, onset)
    s3 = tr - te >= t.gap and not shift
    if s1 + s2 + s3 >= 2:
        verdict = "memorizing"
    elif (tr if fit_acc is None else fit_acc) < t.fit:
        verdict = "underfitting"
    else:
        verdict = "healthy"
    severity = ""
    if verdict == "memorizing":
        gaps = [tr - va] if shift else [tr - va, tr - te]  # a shifted test set's gap is not memorization
        severity = "strong" if max(gaps) >= t.strong else "mild"
    e3, e_shift = _test_evidence(tr, va, te, shift, t, z)
    e2 = _loss_gap_evidence(np.asarray(train_loss, float), np.asarray(val_loss, float), onset, t)
    evidence = {"train_high_val_low": _fit_gap_evidence(tr, va, t, fit_acc), "loss_gap_widening": e2,
                "poor_on_new_data": e3, "test_shift": e_shift}
    note = f"{TEST_SHIFT_NOTE} (validation {_pct(va)}, test {_pct(te)})" if shift else ""
    return Signs(s1, s2, s3, verdict, onset, severity, shift, note, evidence)
