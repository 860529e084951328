"""The per-example ledger of a ``memorization`` study with several technique cells: which
examples each technique stops memorizing (``rotelab.measures.ledger``), as ``ledger.csv``
and a summary, every row named by the example's id."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rotelab.measures.ledger import CATEGORIES, example_ledger, paired_score_difference
from rotelab.studies.memorization_cells import with_class_names


def ledger_table(labels: list[str], slugs: list[str], correct: dict[str, np.ndarray], pool_mask: np.ndarray,
                 vulnerability: dict[str, np.ndarray], ds) -> tuple[pd.DataFrame, dict]:
    """One row per pool example: its category, each cell's score, stderr, vulnerability and
    whether it is memorized, and each technique's paired difference from the baseline (with a
    95% interval). ``correct[cell]``: (n_models, n_pool) bool, the same models in every cell."""
    baseline = "baseline" if "baseline" in labels else labels[0]
    led = example_ledger(correct, pool_mask, baseline=baseline, vulnerability=vulnerability)
    frame: dict[str, np.ndarray] = {"id": ds.train_ids, "pool_index": np.arange(ds.n_train),
                                    "given_label": ds.y_train, "flipped": ds.noisy_mask,
                                    "category": led.category, "out_disagrees": led.out_disagrees}
    by_technique = {}
    for c, (label, slug) in enumerate(zip(labels, slugs)):
        frame.update({f"score_{slug}": led.score[c], f"stderr_{slug}": led.stderr[c],
                      f"vulnerability_{slug}": led.vulnerability[c], f"memorized_{slug}": led.memorized[c]})
        if label == baseline:
            continue
        d = paired_score_difference(correct[label], correct[baseline], pool_mask)
        frame.update({f"diff_{slug}": d.difference, f"diff_low_{slug}": d.low, f"diff_high_{slug}": d.high})
        by_technique[label] = {"mean_difference": float(np.nanmean(d.difference)),
                               "significantly_lower": int((d.high < 0).sum()),
                               "significantly_higher": int((d.low > 0).sum())}
    counts = {k: int((led.category == k).sum()) for k in CATEGORIES}
    summary = {"baseline": baseline, "counts": counts, "by_technique": by_technique}
    if ds.noisy_mask.any():
        summary["flipped_likely_mislabeled"] = float((led.category[ds.noisy_mask] == "likely_mislabeled").mean())
    return with_class_names(pd.DataFrame(frame), ds.classes), summary


__all__ = ["ledger_table"]
