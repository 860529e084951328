"""Report blocks for the label issues of a memorization cell and for the per-example ledger
across its technique cells (``ledger.csv``): counts, a scatter per technique, examples drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rotelab.report import figures
from rotelab.report.blocks import b64, figure, gallery, pct, table

ISSUES_GALLERY = 16
PER_CATEGORY = 8
MEANING = {
    "likely_mislabeled": "memorized by the baseline, and the models that left it out disagree with its label in "
                         "every cell: no technique makes the label predictable from the other examples",
    "regularized_away": "memorized by the baseline, not under some technique: atypical, and that technique works",
    "always_memorized": "memorized in every cell (and the out models agree with its label somewhere)",
    "technique_only": "memorized only under a technique: worth a look",
    "never_memorized": "memorized in no cell",
}


def issue_blocks(li: dict, scores: pd.DataFrame, ex: dict, kind: str, name, id_text) -> list[dict]:
    """The flag's counts and the flagged examples drawn, given → suggested label."""
    text = (f"{li['flagged']} training label(s) flagged as likely wrong (the posterior that the label is wrong "
            f"exceeds 1/2, from the out models' probabilities and per-class noise rates fitted by maximum "
            f"likelihood); estimated noise rate {pct(li['estimated_noise_rate'])}.")
    if "f1" in li:
        text += (f" Against the flipped labels: precision {pct(li['precision'])}, recall {pct(li['recall'])}, "
                 f"F1 {li['f1']:.3f}.")
    out = [{"kind": "heading", "text": "Label issues"}, {"kind": "text", "text": text}]
    if "issue_index" in ex and len(ex["issue_index"]):
        rows = scores.set_index("pool_index").loc[ex["issue_index"][:ISSUES_GALLERY]]
        out.append(gallery((row for _, row in rows.iterrows()), ex["issue_x"],
                           lambda x, title: figures.example(x, kind, title=title),
                           lambda row: (f"{id_text(row['id'])}: given '{name(row['given_label'])}' → suggested "
                                        f"'{name(row['suggested_label'])}' ({pct(row['suggestion_confidence'])})"
                                        + (" (flipped)" if row["flipped"] else "")),
                           lambda row: f"{name(row['given_label'])} → {name(row['suggested_label'])}"))
    return out


def ledger_blocks(result: dict, path: Path, kind: str, name, id_text) -> list[dict]:
    """Counts by category, the baseline-vs-technique scatter per technique, examples per category."""
    led = result["ledger"]
    try:
        frame = pd.read_csv(path / led.get("file", "ledger.csv"))
    except (OSError, ValueError):
        return []
    out = [{"kind": "heading", "text": "Ledger: which examples each technique stops memorizing"},
           {"kind": "text", "text": f"Every training example in every cell (the same subset models), against "
                                    f"{led['baseline']}; the full table is ledger.csv."
                                    + (f" Flipped labels in 'likely mislabeled': {pct(led['flipped_likely_mislabeled'])}."
                                       if "flipped_likely_mislabeled" in led else "")},
           table(["category", "examples", "meaning"], [[k.replace("_", " "), n, MEANING[k]]
                                                      for k, n in led["counts"].items()], sortable=False)]
    out += _scatters(led, frame, result)
    out += _category_galleries(path, frame, kind, name, id_text)
    return out


def _scatters(led: dict, frame: pd.DataFrame, result: dict) -> list[dict]:
    out, base = [], led["baseline"]
    slugs = dict(zip(result["cells"], (Path(result["files"][c]["npz"]).stem.removeprefix("feldman_zhang_")
                                       for c in result["cells"])))
    for cell, stats in led["by_technique"].items():
        png = figures.score_scatter(frame[f"score_{slugs[base]}"].to_numpy(), frame[f"score_{slugs[cell]}"].to_numpy(),
                                    frame["category"].to_numpy(), xlabel=f"memorization score · {base}",
                                    ylabel=f"memorization score · {cell}")
        out.append(figure(png, f"{cell} against {base}, one dot an example: below the diagonal, {cell} memorizes "
                               f"it less. Paired 95% intervals over the same subset models: "
                               f"{stats['significantly_lower']} examples significantly lower, "
                               f"{stats['significantly_higher']} higher (mean difference "
                               f"{stats['mean_difference']:+.3f})."))
    return out


def _category_galleries(path: Path, frame: pd.DataFrame, kind: str, name, id_text) -> list[dict]:
    file = path / "ledger_examples.npz"
    if not file.is_file():
        return []
    with np.load(file) as f:
        ex = {k: f[k] for k in f.files}
    out = []
    by_index = frame.set_index("pool_index")
    for category in MEANING:
        idx = ex.get(f"{category}_index")
        if idx is None or not len(idx):
            continue
        items = [{"png": b64(figures.example(x, kind, title=id_text(by_index.loc[i, "id"])[-18:])),
                  "caption": f"{id_text(by_index.loc[i, 'id'])} given '{name(by_index.loc[i, 'given_label'])}'"
                             + (" (flipped)" if by_index.loc[i, "flipped"] else "")}
                 for i, x in zip(idx, ex[f"{category}_x"])]
        out += [{"kind": "heading", "text": f"Ledger · {category.replace('_', ' ')}"},
                {"kind": "gallery", "pairs": False, "entries": items}]
    return out
