"""Matplotlib figures for the report, returned as PNG bytes (Agg backend, no display)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

TRAIN, VAL, TEST = "#1f77b4", "#d62728", "#2ca02c"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def learning_curves(epochs: Sequence[int], curves: dict, std: dict, onset: int | None) -> bytes:
    """Loss and accuracy per epoch (mean ± std over seeds) with the memorization onset marked."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    e = np.asarray(epochs)
    for ax, metric in zip(axes, ("loss", "acc")):
        for split, color in (("train", TRAIN), ("val", VAL), ("test", TEST)):
            m, s = np.asarray(curves[f"{split}_{metric}"]), np.asarray(std[f"{split}_{metric}"])
            ax.plot(e, m, color=color, label={"val": "validation"}.get(split, split))
            ax.fill_between(e, m - s, m + s, color=color, alpha=0.15, linewidth=0)
        if onset is not None:
            ax.axvline(onset, color="k", linestyle="--", linewidth=1, label=f"onset (epoch {onset})")
        ax.set_xlabel("epoch")
        ax.set_ylabel({"loss": "cross-entropy loss", "acc": "accuracy"}[metric])
        if metric == "acc":  # accuracies in percent, as in every table
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    fig.tight_layout()
    return _png(fig)


def interval_bars(labels: Sequence[str], means, lows, highs, *, xlabel: str, highlight: int | None = None,
                  extra: dict[str, Sequence[float]] | None = None) -> bytes:
    """Horizontal bars with confidence intervals (one row per technique), optional extra markers."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(8, 0.45 * n + 1.2))
    y = np.arange(n)[::-1]
    means, lows, highs = (np.asarray(v, float) for v in (means, lows, highs))
    err = np.vstack([means - np.where(np.isfinite(lows), lows, means), np.where(np.isfinite(highs), highs, means) - means])
    colors = ["#ff7f0e" if i == highlight else "#1f77b4" for i in range(n)]
    ax.barh(y, means, xerr=err, color=colors, alpha=0.85, capsize=3)
    for name, values in (extra or {}).items():
        ax.plot(np.asarray(values, float), y, "kD", markersize=5, label=name)
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))  # accuracies and shares in percent, as in the tables
    ax.grid(axis="x", alpha=0.3)
    if extra:  # outside the axes, so it never covers a bar
        ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(extra))
    shown = [lows[np.isfinite(lows)], means] + [np.asarray(v, float) for v in (extra or {}).values()]
    lo = np.nanmin(np.concatenate(shown)) if n else 0
    ax.set_xlim(max(0.0, lo - 0.05), None)
    fig.tight_layout()
    return _png(fig)


def histogram(values, *, xlabel: str, bins: int = 40, marks: dict[str, np.ndarray] | None = None) -> bytes:
    """Distribution of per-example scores; ``marks`` overlays subsets (e.g. flipped labels)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    edges = np.histogram_bin_edges(v, bins=bins) if v.size else bins
    ax.hist(v, bins=edges, color="#1f77b4", alpha=0.8, label="all examples")
    for name, sub in (marks or {}).items():
        s = np.asarray(sub, float)
        ax.hist(s[np.isfinite(s)], bins=edges, color="#d62728", alpha=0.7, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("examples")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return _png(fig)


def roc_loglog(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Membership-inference ROC curves on log-log axes (the low-FPR regime is what matters)."""
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    for name, (fpr, tpr) in curves.items():
        fpr, tpr = np.asarray(fpr, float), np.asarray(tpr, float)
        ok = (fpr > 0) & (tpr > 0)
        ax.plot(fpr[ok], tpr[ok], label=name)
    grid = np.logspace(-5, 0, 50)
    ax.plot(grid, grid, "k:", linewidth=1, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(1e-4, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _png(fig)


def example(x: np.ndarray, kind: str, *, title: str, size: float = 1.6) -> bytes:
    """One example as a picture: an image (C, H, W), a line plot for a sequence (C, L) or vector."""
    fig, ax = plt.subplots(figsize=(size, size * (0.75 if kind != "image" else 1)))
    x = np.asarray(x, float)
    if kind == "image":
        img = x[0] if x.shape[0] == 1 else np.clip(np.moveaxis(x[:3], 0, -1), 0, 1)
        ax.imshow(img, cmap="gray_r" if x.shape[0] == 1 else None)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        for row in np.atleast_2d(x.reshape(-1, x.shape[-1]) if x.ndim > 1 else x):
            ax.plot(row, linewidth=1.2)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title, fontsize=7)
    fig.tight_layout(pad=0.2)
    return _png(fig)


def score_scatter(base: np.ndarray, other: np.ndarray, categories: np.ndarray, *, xlabel: str, ylabel: str) -> bytes:
    """Each example's memorization score in two cells, colored by its ledger category."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    colors = {"likely_mislabeled": "#d62728", "regularized_away": "#2ca02c", "always_memorized": "#ff7f0e",
              "technique_only": "#9467bd", "never_memorized": "#c7c7c7"}
    for name, color in colors.items():
        pick = categories == name
        if pick.any():
            ax.scatter(base[pick], other[pick], s=6, color=color, alpha=0.6, label=name.replace("_", " "))
    ax.plot([-1, 1], [-1, 1], "k:", linewidth=1)
    ax.set_xlim(-0.3, 1.05)
    ax.set_ylim(-0.3, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _png(fig)


def strength_over_epochs(schedules: dict[str, np.ndarray], *, ylabel: str, log: bool,
                         extra: dict[str, np.ndarray] | None = None, extra_ylabel: str = "") -> bytes:
    """Each row's strength per epoch: (folds, epochs) arrays, a line through the folds' median
    and a band from their lowest to their highest; ``extra`` (AWD's λ̄) in a second panel."""
    panels = [(schedules, ylabel)] + ([(extra, extra_ylabel)] if extra else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (rows, label) in zip(axes[0], panels):
        for i, (name, values) in enumerate(rows.items()):
            v = np.asarray(values, float)
            e = np.arange(1, v.shape[1] + 1)
            color = f"C{i % 10}"
            dashed = name.startswith("grid") or name.startswith("random")
            ax.plot(e, np.median(v, axis=0), color=color, linestyle="--" if dashed else "-", label=name)
            ax.fill_between(e, v.min(0), v.max(0), color=color, alpha=0.12, linewidth=0)
        if log or rows is extra:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _png(fig)
