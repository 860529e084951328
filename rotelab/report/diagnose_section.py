"""Report section for ``diagnose``: the verdict, the signs, the learning curves."""

from __future__ import annotations

from pathlib import Path

from rotelab.report import figures
from rotelab.report.blocks import Points, figure, pct, pcts, table


def blocks(study: dict, result: dict, path: Path) -> list[dict]:
    f = result["final"]
    signs = result["signs"]
    onset = result.get("onset_epoch")
    text = (f"memorization begins after epoch {onset}: validation loss stops falling while training loss "
            "still falls." if onset is not None and result["verdict"] == "memorizing" else "")
    rows = []
    n = len(result["epochs"])
    step = max(1, n // 15)  # about 15 rows; the figure shows every epoch
    keep = set(range(0, n, step)) | {n - 1} | ({result["epochs"].index(onset)} if onset in result["epochs"] else set())
    for i, e in enumerate(result["epochs"]):
        if i not in keep:
            continue
        c = result["curves"]
        rows.append([e, *pcts(c["train_acc"][i], c["val_acc"][i], c["test_acc"][i]), c["train_loss"][i],
                     c["val_loss"][i], Points(c["train_acc"][i] - c["val_acc"][i])])
    if result.get("severity"):
        text = f"({result['severity']}) " + text
    if result.get("note"):
        text += f" Note: {result['note']}; the third sign is not counted."
    evidence = result.get("evidence", {})
    fallback = {  # studies stored before the evidence was recorded
        "train_high_val_low": f"train {pct(f['train_acc'])}, validation {pct(f['val_acc'])}",
        "loss_gap_widening": f"validation − training loss {f['loss_gap']:.3f} at the end",
        "poor_on_new_data": f"test accuracy {pct(f['test_acc'])} vs training {pct(f['train_acc'])}",
    }
    return [
        {"kind": "verdict", "verdict": result["verdict"], "text": text},
        {"kind": "signs", "entries": [
            (label, signs[name], evidence.get(name, {}).get("text", fallback[name])) for name, label in (
                ("train_high_val_low", "high training accuracy, low validation accuracy"),
                ("loss_gap_widening", "widening gap between training and validation loss"),
                ("poor_on_new_data", "poor performance on new data"))]},
        {"kind": "heading", "text": "Learning curves"},
        figure(figures.learning_curves(result["epochs"], result["curves"], result["curves_std"], onset),
               f"Mean ± std over {result['seeds']} seed(s)"
               + ("; dashed line: memorization onset." if onset is not None else "; no memorization onset.")),
        {"kind": "heading", "text": "Per epoch"},
        table(["epoch", "train acc", "val acc", "test acc", "train loss", "val loss", "acc gap (points)"], rows),
    ]
