"""One technique cell of a ``memorization`` study: its models' outputs -> scores, influence,
attacks, label issues, and the files they are written to.

Every measure here is a pure function from ``rotelab.measures``; this module only feeds them
the cell's arrays (pool examples first, then the test split) and lays their results out as
tables with the examples' ids.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rotelab.errors import InvalidInputError
from rotelab.measures.label_issues import label_issues
from rotelab.measures.membership import (
    AttackROC, attack_roc, example_vulnerability, lira_fixed_variance, lira_scores, loss_attack_scores,
)
from rotelab.measures.memorization import (
    influence_scores, memorization_scores, split_half_correlation, top_influence_pairs,
)
from rotelab.measures.rmia import rmia_scores
from rotelab.store import atomic_write_bytes

#: Attacks reported, in table order; ``HEADLINE_ATTACK`` is the one quoted first.
ATTACKS = ("loss", "lira_online", "lira_offline", "rmia_online", "rmia_offline")
HEADLINE_ATTACK = "lira_online"
#: RMIA's offline coefficient ``a`` (Pr_in ≈ a·Pr_out + 1 − a). 0 suits models that fit their
#: whole subset, as the study's do: it gave the best AUC at 4 reference models on MNIST-1D and
#: was then used unchanged on digits (bench/results_rmia.md); ML Privacy Meter's default is 0.3.
RMIA_A = 0.0
#: Influence pairs kept in ``influence_<cell>.csv``.
TOP_PAIRS = 100
#: Most memorized examples, flagged labels and top influence pairs whose inputs are saved for the report.
GALLERY = 32
GALLERY_PAIRS = 12
#: ROC points stored per attack (log-spaced in FPR).
ROC_POINTS = 200
#: Score histogram shown in tables: left edges of the bins (the last bin is closed at 1).
SCORE_BINS = (-1.0, 0.0, 0.1, 0.25, 0.5, 0.75)
QUANTILES = {"min": 0.0, "p10": 0.1, "p25": 0.25, "median": 0.5, "p75": 0.75, "p90": 0.9, "p99": 0.99, "max": 1.0}
_SPLIT_STREAM = 0x5A1F
_REFERENCE_STREAM = 0x4EF5  # which reference models each target gets, with --reference-models N


@dataclass(frozen=True, eq=False)
class CellMeasures:
    summary: dict
    scores: pd.DataFrame  # one row per pool example
    pairs: pd.DataFrame
    roc: pd.DataFrame
    arrays: dict[str, np.ndarray]


def measure_cell(out: dict[str, np.ndarray], pool_mask: np.ndarray, ds, *, seed: int,
                 reference_models: int | None = None) -> CellMeasures:
    """Scores, influence, attacks, label issues and their tables for one cell's models.

    ``out``: the engine's outputs (n_models, N[, C]) over the pool then the test split;
    ``pool_mask`` (n_models, n_pool): which pool examples each model trained on.
    """
    p, tm = ds.n_train, pool_mask
    correct = out["correct"].astype(bool)
    est = memorization_scores(correct[:, :p], tm)
    try:
        split = split_half_correlation(correct[:, :p], tm, rng=np.random.default_rng([seed, _SPLIT_STREAM]))
    except InvalidInputError:  # fewer than 4 models, or halves without in and out models
        split = float("nan")
    influence = influence_scores(correct[:, p:], tm).astype(np.float32)
    rocs, vulnerability = _attacks(out["margin"], tm, p, seed=seed, reference_models=reference_models)
    issues = label_issues(out["probs"][:, :p].astype(np.float32), tm, ds.y_train) if "probs" in out else None
    scores = _scores_frame(ds, est, vulnerability, _majority_out(out["pred"][:, :p], ~tm, ds.n_classes), issues)
    roc_df = pd.concat([pd.DataFrame(dict(zip(("attack", "fpr", "tpr"), (name, *roc.downsampled(ROC_POINTS)))))
                        for name, roc in rocs.items()], ignore_index=True)
    summary = _summary(ds, tm, correct, est, scores, rocs, split=split, reference_models=reference_models)
    if issues is not None:
        summary["label_issues"] = _issues_summary(issues, ds.noisy_mask, scores)
    arrays = {"trainset_mask": tm.copy(), "memorization": est.score, "influence": influence,
              "memorization_stderr": est.stderr, "tr_labels": ds.y_train, "tt_labels": ds.y_test,
              "flipped": ds.noisy_mask}
    return CellMeasures(summary, scores, _pairs(ds, influence, est.score), roc_df, arrays)


def _finite(a: np.ndarray) -> np.ndarray:
    """Margins/losses of a saturated model can overflow float32; keep them large but finite."""
    a = np.asarray(a, dtype=np.float64)
    return a if np.isfinite(a).all() else np.nan_to_num(a, nan=0.0, posinf=1e6, neginf=-1e6)


def _majority_out(pred: np.ndarray, out_mask: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_pool,) most frequent prediction among the models that did not train on the example."""
    counts = np.stack([((pred == c) & out_mask).sum(axis=0) for c in range(n_classes)])
    return np.where(out_mask.any(axis=0), counts.argmax(axis=0), -1)


def _attacks(margin: np.ndarray, tm: np.ndarray, p: int, *, seed: int,
             reference_models: int | None) -> tuple[dict[str, AttackROC], np.ndarray]:
    """Membership inference over the training pool, each model the target and the others its
    references (all of them, or ``reference_models`` drawn the same way for every attack):
    the ROC of each attack and each example's vulnerability to the headline attack.
    ``margin`` (n_models, N): the pool, then the test split (RMIA's population samples)."""
    margin = _finite(margin)
    pool, population = margin[:, :p], margin[:, p:]
    n = reference_models

    def refs():  # the same draw for every attack: they are compared on the same references
        return None if n is None else np.random.default_rng([seed, _REFERENCE_STREAM])

    # the loss from the margin, -log p_y = log(1 + e^-margin), in float64: the engine's float32
    # loss rounds to exactly 0 for confident predictions, and those ties would hide the loss
    # attack's low-FPR end behind one threshold
    scores = {"loss": loss_attack_scores(np.logaddexp(0.0, -pool))}
    for variant in ("online", "offline"):
        if n is not None and n < 2 and variant == "online":
            continue  # an online attack needs a reference that trained on the example and one that did not
        scores[f"lira_{variant}"] = lira_scores(pool, tm, variant=variant, n_reference=n, rng=refs())
        if population.shape[1]:
            scores[f"rmia_{variant}"] = rmia_scores(pool, tm, population, variant=variant, a=RMIA_A,
                                                    n_reference=n, rng=refs())
    rocs = {name: attack_roc(scores[name], tm) for name in ATTACKS if name in scores}
    headline = HEADLINE_ATTACK if HEADLINE_ATTACK in scores else "lira_offline"
    return rocs, example_vulnerability(scores[headline], tm, fpr=0.01)


def with_class_names(frame: pd.DataFrame, classes) -> pd.DataFrame:
    """Beside each ``*_label`` column (class indices), a ``*_class`` column with the class's name
    (a folder's or a CSV value's; "" where the label is -1, none): a user joining these tables to
    their data would otherwise read rotelab's indices as their own labels."""
    names = np.asarray(list(classes) + [""], dtype=object)  # index -1 -> ""
    out = frame.copy()
    for col in [c for c in frame.columns if c.endswith("_label")]:
        at = out.columns.get_loc(col) + 1
        out.insert(at, col[: -len("_label")] + "_class", names[frame[col].to_numpy(dtype=np.int64)])
    return out


def _scores_frame(ds, est, vulnerability: np.ndarray, predicted: np.ndarray, issues) -> pd.DataFrame:
    """One row per pool example: its id in the user's source, scores, and label diagnosis."""
    frame = {"id": ds.train_ids, "pool_index": np.arange(ds.n_train), "given_label": ds.y_train,
             "clean_label": ds.clean_labels, "predicted_label": predicted, "score": est.score, "stderr": est.stderr,
             "n_in": est.n_in, "n_out": est.n_out, "p_in": est.p_in, "p_out": est.p_out,
             "vulnerability": vulnerability}
    if issues is not None:
        frame.update(label_issue=issues.label_issue, issue_probability=issues.issue_probability,
                     label_quality=issues.label_quality, suggested_label=issues.suggested_label,
                     suggestion_confidence=issues.confidence)
    frame["flipped"] = ds.noisy_mask
    return with_class_names(pd.DataFrame(frame), ds.classes)


def _pairs(ds, influence: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    """The top influence pairs with both examples' ids (``train_id``, ``test_id``) and positions."""
    top = pd.DataFrame(top_influence_pairs(influence, k=TOP_PAIRS), columns=["train_pool_index", "test_index",
                                                                            "influence"])
    tr, te = top["train_pool_index"].to_numpy(), top["test_index"].to_numpy()
    return with_class_names(pd.DataFrame({
        "train_id": ds.ids_of(tr), "test_id": ds.ids_of(te, split="test"), "influence": top["influence"],
        "train_label": ds.y_train[tr], "test_label": ds.y_test[te], "train_score": score[tr],
        "train_pool_index": tr, "test_index": te}), ds.classes)


def _roc_dict(roc: AttackROC, attack: str, tm: np.ndarray, reference_models: int | None) -> dict:
    d = {"auc": roc.auc, "tpr_at_0_1pct": roc.tpr_at_0_1pct, "tpr_at_1pct": roc.tpr_at_1pct,
         "n_members": roc.n_members, "n_nonmembers": roc.n_nonmembers}
    if attack.startswith("lira_"):  # as lira_scores decided it: one pooled variance, or one per example
        d["fixed_variance"] = lira_fixed_variance(tm, variant=attack.removeprefix("lira_"),
                                                  n_reference=reference_models)
    return d


def _auc_or_none(labels: np.ndarray, values: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    keep = np.isfinite(values)
    y = labels[keep]
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, values[keep]))


def _summary(ds, tm: np.ndarray, correct: np.ndarray, est, scores: pd.DataFrame, rocs: dict, *,
             split: float, reference_models: int | None) -> dict:
    """The cell's plain numbers (``MemorizationResult.summaries``)."""
    p, flipped, vulnerability = ds.n_train, ds.noisy_mask, scores["vulnerability"].to_numpy()
    s = est.score[np.isfinite(est.score)]
    edges = np.asarray(SCORE_BINS)
    hist = np.bincount(np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(edges) - 1),
                       minlength=len(edges))
    has_noise = bool(flipped.any())
    top10 = scores.sort_values(["score", "stderr", "pool_index"], ascending=[False, True, True]).head(10)
    return {
        "n_models": len(tm), "n_train": int(p), "n_test": int(ds.n_test), "mean_score": float(s.mean()),
        "quantiles": {k: float(np.quantile(s, q)) for k, q in QUANTILES.items()},
        "share_above_0_5": float((s > 0.5).mean()),
        "histogram": {"edges": list(SCORE_BINS) + [1.0], "counts": hist.tolist()},
        "mean_stderr": float(np.nanmean(est.stderr)), "split_half_correlation": float(split),
        "attacks": {name: _roc_dict(r, name, tm, reference_models) for name, r in rocs.items()},
        "headline_attack": HEADLINE_ATTACK if HEADLINE_ATTACK in rocs else "lira_offline",
        "reference_models": reference_models, "rmia_a": RMIA_A,
        "mean_vulnerability": float(np.nanmean(vulnerability)), "n_flipped": int(flipped.sum()),
        "flipped_auc_score": _auc_or_none(flipped, est.score) if has_noise else None,
        "flipped_auc_vulnerability": _auc_or_none(flipped, vulnerability) if has_noise else None,
        "accuracy": {
            "train": float(correct[:, :p][tm].mean()),
            "held_out": float(correct[:, :p][~tm].mean()),
            "test": float(correct[:, p:].mean()) if ds.n_test else float("nan"),
        },
        "top_memorized": _records(top10, ["id", "pool_index", "given_label", "given_class", "clean_label",
                                          "clean_class", "predicted_label", "predicted_class", "score", "stderr",
                                          "flipped"]),
    }


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame[columns].to_dict("records")]


def _issues_summary(issues, flipped: np.ndarray, scores: pd.DataFrame) -> dict:
    """How many labels look wrong, the fitted noise, and (with injected noise) how well the
    flag finds the flipped labels."""
    flag = issues.label_issue
    top = scores[flag].sort_values(["issue_probability", "pool_index"], ascending=[False, True]).head(10)
    out = {"flagged": int(flag.sum()), "estimated_noise_rate": float(np.nanmean(issues.issue_probability)),
           "noise_rate_by_class": [float(v) for v in issues.noise_rate], "temperature": float(issues.temperature),
           "top": _records(top, ["id", "pool_index", "given_label", "given_class", "suggested_label",
                                 "suggested_class", "suggestion_confidence", "issue_probability", "flipped"])}
    if flipped.any():
        tp = int((flag & flipped).sum())
        precision = tp / max(int(flag.sum()), 1)
        recall = tp / int(flipped.sum())
        out.update(precision=precision, recall=recall,
                   f1=2 * precision * recall / (precision + recall) if tp else 0.0,
                   auc_label_quality=_auc_or_none(flipped, -issues.label_quality))
    return out


# ── files ─────────────────────────────────────────────────────────────────────────────
def _gallery(m: CellMeasures, ds) -> dict[str, np.ndarray]:
    """Features of the most memorized examples, the flagged labels and the top influence pairs,
    for the report."""
    s = m.scores
    top = s.sort_values(["score", "stderr", "pool_index"], ascending=[False, True, True])["pool_index"]
    top = top.to_numpy()[:GALLERY]
    pairs = m.pairs.head(GALLERY_PAIRS)
    arrays = {"top_index": top, "top_id": ds.ids_of(top), "top_x": ds.x_train[top],
              "pair_train_x": ds.x_train[pairs["train_pool_index"].to_numpy()],
              "pair_test_x": ds.x_test[pairs["test_index"].to_numpy()]}
    if "label_issue" in s:
        flagged = s[s["label_issue"]].sort_values(["issue_probability", "pool_index"], ascending=[False, True])
        idx = flagged["pool_index"].to_numpy()[:GALLERY]
        arrays.update(issue_index=idx, issue_x=ds.x_train[idx])
    return arrays


def write_cell(path: Path, slug: str, m: CellMeasures, ds) -> dict[str, str]:
    """scores_<cell>.csv/.parquet, influence_<cell>.csv, roc_<cell>.csv, feldman_zhang_<cell>.npz,
    examples_<cell>.npz (the inputs the report draws)."""
    names = {
        "scores_csv": f"scores_{slug}.csv", "scores_parquet": f"scores_{slug}.parquet",
        "influence": f"influence_{slug}.csv", "roc": f"roc_{slug}.csv", "npz": f"feldman_zhang_{slug}.npz",
        "examples": f"examples_{slug}.npz",
    }
    atomic_write_bytes(path / names["scores_csv"], m.scores.to_csv(index=False).encode())
    buf = io.BytesIO()
    m.scores.to_parquet(buf, index=False)
    atomic_write_bytes(path / names["scores_parquet"], buf.getvalue())
    atomic_write_bytes(path / names["influence"], m.pairs.to_csv(index=False).encode())
    atomic_write_bytes(path / names["roc"], m.roc.to_csv(index=False).encode())
    for key, arrays in (("npz", m.arrays), ("examples", _gallery(m, ds))):
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(path / names[key], buf.getvalue())
    return names
