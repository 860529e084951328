"""Report section for ``memorization``: score histogram, the most memorized examples drawn,
the most influential train→test pairs, and membership-inference ROC curves on log-log axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rotelab.errors import StoreError
from rotelab.measures.memorization import UNSTABLE_BELOW
from rotelab.report import figures, ledger_section
from rotelab.report.blocks import Pct, b64, figure, gallery, pct, pcts, table

GALLERY = 16
PAIRS = 6
ATTACK_NAMES = {"loss": "loss threshold (Yeom)", "lira_online": "LiRA online", "lira_offline": "LiRA offline",
                "rmia_online": "RMIA online", "rmia_offline": "RMIA offline"}


def _read(path: Path, name: str, reader):
    try:
        return reader(path / name)
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path / name}: missing or unreadable ({exc}); rerun the memorization study") from None


def blocks(study: dict, result: dict, path: Path) -> list[dict]:
    classes = study["dataset"].get("classes", [])
    kind = study["dataset"].get("kind", "vector")
    cells = result["cells"]
    out: list[dict] = []
    # one comparison table across cells: what each technique does to memorization and attacks
    rows = []
    for cell in cells:
        s = result["summaries"][cell]
        head = s["attacks"].get(s.get("headline_attack", "lira_online"), {})
        row = [cell, s["mean_score"], Pct(s["share_above_0_5"]), s["split_half_correlation"],
               s["attacks"]["loss"]["auc"], head.get("auc"), *pcts(head.get("tpr_at_0_1pct"), head.get("tpr_at_1pct"),
                                                                   s["accuracy"]["train"], s["accuracy"]["held_out"])]
        if s.get("flipped_auc_score") is not None:
            row.append(s["flipped_auc_score"])
        rows.append([float("nan") if v is None else v for v in row])
    cols = ["technique", "mean score", "share > 0.5", "split-half r", "loss-attack AUC", "LiRA AUC",
            "LiRA TPR@0.1%", "LiRA TPR@1%", "train acc", "held-out acc"]
    if len(rows[0]) > len(cols):
        cols.append("AUC of score for flipped")
    out.append({"kind": "text", "text": (
        f"{result['models']} models, each trained on a random {pct(result['subset'])} of the training set. "
        "Memorization score (Feldman & Zhang 2020) = P[correct | example in the model's subset] − "
        "P[correct | not]; higher = more memorized. Membership inference uses the same models as shadows, "
        "each in turn the target.")})
    out.append(table(cols, rows))
    for cell in cells:
        out += _cell_blocks(path, result, cell, classes, kind, several=len(cells) > 1)
    if result.get("ledger"):
        out += ledger_section.ledger_blocks(result, path, kind, _namer(classes), id_text)
    return out


def _namer(classes: list):
    return lambda i: str(classes[int(i)]) if 0 <= int(i) < len(classes) else str(int(i))


def _cell_blocks(path: Path, result: dict, cell: str, classes: list, kind: str, *, several: bool) -> list[dict]:
    files = result["files"][cell]
    s = result["summaries"][cell]
    scores = _read(path, files["scores_csv"], pd.read_csv)
    pairs = _read(path, files["influence"], pd.read_csv)
    if "pool_index" not in scores:  # written before examples carried ids: the position is the id
        scores = scores.rename(columns={"index": "pool_index"}).assign(id=lambda d: d["pool_index"])
        pairs = pairs.rename(columns={"train_index": "train_id"}).assign(test_id=lambda d: d["test_index"])
    roc = _read(path, files["roc"], pd.read_csv)
    name = _namer(classes)
    out: list[dict] = [{"kind": "heading", "text": f"Memorization · {cell}" if several else "Memorization"}]
    flipped = scores["flipped"].to_numpy(bool)
    marks = {"flipped labels": scores["score"].to_numpy()[flipped]} if flipped.any() else None
    out.append(figure(figures.histogram(scores["score"].to_numpy(), xlabel="memorization score", marks=marks),
                      f"Scores of all {len(scores)} training examples (log count); split-half correlation "
                      f"{s['split_half_correlation']:.3f}."))
    if s["split_half_correlation"] < UNSTABLE_BELOW:
        out.append({"kind": "text", "text": (
            f"The scores are unstable: two halves of the models rank the examples with a correlation of "
            f"{s['split_half_correlation']:.2f} only, so the most memorized examples and the most influential "
            "pairs below are mostly the noise of too few models (the largest of many noisy estimates is large by "
            "chance). Train more models.")})
    top_rows = [[id_text(r.get("id", r.get("index"))), name(r["given_label"]), name(r["predicted_label"]),
                 r["score"], r["stderr"], "yes" if r["flipped"] else "no"] for r in s["top_memorized"]]
    out.append(table(["example", "given", "predicted (held out)", "score", "stderr", "flipped"], top_rows))
    examples = path / files.get("examples", f"examples_{Path(files['npz']).stem.removeprefix('feldman_zhang_')}.npz")
    if examples.is_file():
        with np.load(examples) as f:
            ex = {k: f[k] for k in f.files}
        out += _galleries(ex, scores, pairs, kind, name)
        if "label_issues" in s:
            out += ledger_section.issue_blocks(s["label_issues"], scores, ex, kind, name, id_text)
    out.append({"kind": "heading", "text": "Membership inference"})
    curves = {ATTACK_NAMES.get(a, a): (g["fpr"].to_numpy(), g["tpr"].to_numpy()) for a, g in roc.groupby("attack")}
    out.append(figure(figures.roc_loglog(curves), "ROC curves on log-log axes: what matters is the true-positive "
                                                   "rate at a low false-positive rate (Carlini et al. 2022)."))
    out.append(table(["attack", "AUC", "TPR @ 0.1% FPR", "TPR @ 1% FPR"],
                     [[ATTACK_NAMES.get(a, a), v["auc"], *pcts(v["tpr_at_0_1pct"], v["tpr_at_1pct"])]
                      for a, v in s["attacks"].items()]))
    return out


def id_text(v) -> str:
    """An example's id as people read it: ``#12`` for an index or a row, the path itself for a file."""
    try:
        return f"#{int(v)}"
    except (TypeError, ValueError):
        return str(v)


def _galleries(ex: dict, scores: pd.DataFrame, pairs: pd.DataFrame, kind: str, name) -> list[dict]:
    """The most memorized examples drawn, and the most influential train -> test pairs, each
    captioned with the examples' ids in the user's source."""
    top = scores.set_index("pool_index").loc[ex["top_index"][:GALLERY]]
    out = [{"kind": "heading", "text": "Most memorized training examples"},
           gallery((row for _, row in top.iterrows()), ex["top_x"],
                   lambda x, title: figures.example(x, kind, title=title),
                   lambda row: (f"{id_text(row['id'])} given '{name(row['given_label'])}', predicted "
                                f"'{name(row['predicted_label'])}', score {row['score']:.2f}"
                                + (" (flipped)" if row["flipped"] else "")),
                   lambda row: f"{id_text(row['id'])[-18:]} score {row['score']:.2f}")]
    pair_items = []
    for j, (_, p) in enumerate(pairs.head(min(PAIRS, len(ex["pair_train_x"]))).iterrows()):
        train, test = id_text(p["train_id"]), id_text(p["test_id"])
        pair_items.append({"pngs": [
            b64(figures.example(ex["pair_train_x"][j], kind, title=f"train {train[-18:]}")),
            b64(figures.example(ex["pair_test_x"][j], kind, title=f"test {test[-18:]}"))],
            "caption": f"train {train} ('{name(p['train_label'])}') → test {test} ('{name(p['test_label'])}'): "
                       f"influence {p['influence']:.2f}"})
    if pair_items:
        out += [{"kind": "heading", "text": "Most influential train → test pairs"},
                {"kind": "gallery", "pairs": True, "entries": pair_items}]
    return out
