"""``rotelab memorization``: per-example memorization scores and membership inference."""

from __future__ import annotations

from typing import Any

from rotelab.commands.options import num, out, pct, study_command
from rotelab.commands.tables import Column, print_table

ATTACK_NAMES = {"loss": "loss threshold", "lira_online": "LiRA online", "lira_offline": "LiRA offline",
                "rmia_online": "RMIA online", "rmia_offline": "RMIA offline"}


def render(r: Any) -> None:
    d = r.dataset
    out.print(f"[bold]memorization[/bold] · {d['name']} ({d['n_train']} train / {d['n_test']} test) · {r.model} · "
              f"{r.models} models on {r.subset:g} of the pool · {r.epochs} epochs")
    if len(r.cells) > 1:
        _comparison(r)
    for cell in r.cells:
        s = r.summaries[cell]
        _distribution(s, f"memorization scores · {cell}")
        q, acc = s["quantiles"], s["accuracy"]
        out.print(f"score mean {s['mean_score']:.3f} · median {q['median']:.3f} · p90 {q['p90']:.3f} · "
                  f"p99 {q['p99']:.3f} · above 0.5: {pct(s['share_above_0_5'])}; accuracy on own subset "
                  f"{pct(acc['train'])}, on held-out pool {pct(acc['held_out'])}, on test {pct(acc['test'])}")
        csv = r.files.get(cell, {}).get("scores_csv", "the scores file")
        _top(s, d, f"most memorized · {cell}", csv)
        out.print(f"stability: scores from two disjoint halves of the models correlate at r = "
                  f"[bold]{num(s['split_half_correlation'])}[/bold] (mean standard error {s['mean_stderr']:.3f})")
        if s["flipped_auc_score"] is not None:
            out.print(f"flipped labels ({s['n_flipped']}): ROC AUC of the score for \"was flipped\" "
                      f"{num(s['flipped_auc_score'])}, of the LiRA vulnerability {num(s['flipped_auc_vulnerability'])}")
        _attacks(s, f"membership inference · {cell}")
        if "label_issues" in s:
            _issues(s["label_issues"], d, f"label issues · {cell}", csv)
    if r.ledger:
        _ledger(r)
    out.print(f"[dim]study: {r.study_dir} ({r.jobs_trained} job(s) trained, {r.jobs_reused} reused)[/dim]")


def _distribution(s: dict, title: str) -> None:
    edges, counts = s["histogram"]["edges"], s["histogram"]["counts"]
    total = max(sum(counts), 1)
    rows = []
    for i, c in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        label = f"< {hi:g}" if i == 0 else (f"≥ {lo:g}" if i == len(counts) - 1 else f"{lo:g} – {hi:g}")
        rows.append([label, str(c), pct(c / total)])
    print_table(out, title, [Column("score", key=True), Column("examples", key=True), Column("share", key=True)],
                rows)


def _label(classes: list[str], i: int) -> str:
    return classes[i] if 0 <= i < len(classes) else "–"


def _shown(n_shown: int, n_all: int, what: str, csv: str) -> str | None:
    """The note under a table cut to its first rows: how many of how many, and where all are."""
    return f"top {n_shown} of {n_all} {what} shown; all in {csv}" if n_shown < n_all else None


def _top(s: dict, dataset: dict, title: str, csv: str) -> None:
    classes = dataset["classes"]
    cols = [Column("id", key=True), Column("given\nlabel", key=True), Column("predicted\n(held out)", key=True),
            Column("score", key=True), Column("±\nstderr"), Column("flipped")]
    rows = [[str(row["id"]), _label(classes, row["given_label"]), _label(classes, row["predicted_label"]),
             f"{row['score']:.3f}", f"{row['stderr']:.3f}", "yes" if row["flipped"] else ""]
            for row in s["top_memorized"]]
    caption = f"id: {dataset.get('ids', 'position in the training pool')}"
    more = _shown(len(rows), s["n_train"], "examples by score", csv)
    print_table(out, title, cols, rows, caption=caption + (f"; {more}" if more else ""))


def _attacks(s: dict, title: str) -> None:
    fixed = [ATTACK_NAMES[n].removeprefix("LiRA ") for n, a in s["attacks"].items() if a.get("fixed_variance")]
    variance = f"one variance shared by all examples for {' and '.join(fixed)} (few shadows)" if fixed \
        else "per-example variances"
    n_ref = s.get("reference_models")
    refs = f"{n_ref} reference model(s) each" if n_ref else f"the other {s['n_models'] - 1} its references"
    rows = [[ATTACK_NAMES.get(name, name), f"{a['auc']:.3f}", pct(a["tpr_at_0_1pct"]), pct(a["tpr_at_1pct"])]
            for name, a in s["attacks"].items()]
    print_table(out, title, [Column("attack", key=True), Column("ROC AUC", key=True),
                             Column("TPR @\n0.1% FPR", key=True), Column("TPR @\n1% FPR", key=True)], rows,
                caption=f"each model the target, {refs}; LiRA with {variance}")


def _issues(li: dict, dataset: dict, title: str, csv: str) -> None:
    """How many labels look wrong, how well that finds the flipped ones, and the surest."""
    classes = dataset["classes"]
    line = (f"{li['flagged']} label(s) flagged as likely wrong; estimated noise rate "
            f"{pct(li['estimated_noise_rate'])}")
    if "f1" in li:
        line += (f"; of the flipped labels: precision {pct(li['precision'])}, recall {pct(li['recall'])}, "
                 f"F1 {li['f1']:.3f}, ROC AUC {num(li['auc_label_quality'])}")
    out.print(line)
    if li["top"]:
        rows = [[str(row["id"]), _label(classes, row["given_label"]), _label(classes, row["suggested_label"]),
                 pct(row["suggestion_confidence"]), "yes" if row["flipped"] else ""] for row in li["top"]]
        print_table(out, title, [Column("id", key=True), Column("given", key=True), Column("suggested", key=True),
                                 Column("confidence", key=True), Column("flipped")], rows,
                    caption=_shown(len(rows), li["flagged"], "flagged labels (surest first)",
                                   f"{csv} (column label_issue)"))


def _ledger(r: Any) -> None:
    """Which examples each technique stops memorizing: counts by category."""
    led = r.ledger
    rows = [[name.replace("_", " "), str(n)] for name, n in led["counts"].items()]
    caption = None
    if "flipped_likely_mislabeled" in led:
        caption = f"flipped labels in 'likely mislabeled': {pct(led['flipped_likely_mislabeled'])}"
    print_table(out, f"ledger: every example across the techniques (against {led['baseline']}; ledger.csv)",
                [Column("category", key=True), Column("examples", key=True)], rows, caption=caption)


def _comparison(r: Any) -> None:
    cols = [Column("technique", key=True), Column("mean\nscore", key=True), Column("score\n> 0.5", key=True),
            Column("LiRA TPR\n@ 1%", key=True), Column("test\nacc", key=True), Column("split\nr"),
            Column("loss TPR\n@ 1%"), Column("LiRA TPR\n@ 0.1%"), Column("LiRA\nAUC")]
    rows = []
    for cell in r.cells:
        s = r.summaries[cell]
        lira, loss = s["attacks"][s["headline_attack"]], s["attacks"]["loss"]
        rows.append([cell, f"{s['mean_score']:.3f}", pct(s["share_above_0_5"]), pct(lira["tpr_at_1pct"]),
                     pct(s["accuracy"]["test"]), num(s["split_half_correlation"]), pct(loss["tpr_at_1pct"]),
                     pct(lira["tpr_at_0_1pct"]), f"{lira['auc']:.3f}"])
    print_table(out, "by technique (same subsets and seeds)", cols, rows)


command = study_command("memorization", render, "Which examples are memorized (Feldman-Zhang scores) and how "
                                                "well membership leaks (loss, LiRA, RMIA).")
