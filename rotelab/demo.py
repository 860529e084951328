"""The main job (``make demo``): the three questions rotelab answers, on built-in data.

1. Is it memorizing?  ``diagnose`` an MLP on MNIST-1D.
2. What helps?        ``compare`` techniques by 5-fold CV (twice) on small digits with 20% flipped labels.
3. What is memorized? ``memorization`` scores and membership inference on digits with 10% flipped labels.
Then one HTML report over the three studies. Each study resumes from the store if rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rotelab.report.page import build_report

DEMO_TECHNIQUES = "baseline,augment,dropout,l2,early-stop,mixup+dropout"


@dataclass(frozen=True)
class DemoResult:
    headlines: list[str]
    report: Path
    study_dirs: list[str]


def run_demo(runs_dir: str | Path = "runs/demo", *, progress: bool = True, device: str = "auto",
             models: int = 128) -> DemoResult:
    """Run the three studies (each resumable) and build their report under ``runs_dir``."""
    import rotelab

    runs_dir = Path(runs_dir)
    d = rotelab.diagnose("mnist1d", "mlp", seeds=3, runs_dir=runs_dir, device=device, progress=progress)
    c = rotelab.compare("digits", "mlp", techniques=DEMO_TECHNIQUES, folds=5, repeats=2, train_size=300,
                        label_noise=0.2,
                        runs_dir=runs_dir, device=device, progress=progress)
    m = rotelab.memorization("digits", "mlp", models=models, label_noise=0.1, runs_dir=runs_dir, device=device,
                             progress=progress)
    report = build_report([d.study_dir, c.study_dir, m.study_dir], runs_dir / "report.html")

    f = d.final
    lines = [
        f"MNIST-1D, MLP: {d.verdict}{f' ({d.severity})' if d.severity else ''}"
        + (f" from epoch {d.onset_epoch}" if d.onset_epoch else "")
        + f" — train {f['train_acc']:.1%}, validation {f['val_acc']:.1%}, test (new data) {f['test_acc']:.1%}."
    ]
    t = c.table.set_index("technique")
    base = t.loc["baseline"]
    best = t.loc[c.recommended or c.best]
    verdict = "best is" if c.recommended else "no technique is significantly better; the highest mean is"
    lines.append(
        f"Digits (300 examples, 20% flipped labels), 5-fold CV twice: the baseline fits {base['noisy_memorized']:.0%} "
        f"of the flipped labels at {base['val_acc']:.1%} clean validation accuracy; {verdict} {best.name}: "
        f"{best['val_acc']:.1%} ({100 * (best['val_acc'] - base['val_acc']):+.1f} points, p = {best['p_holm']:.2g} "
        f"after Holm's adjustment for {len(t) - 1} tests), fitting {best['noisy_memorized']:.0%} of them."
    )
    s = m.summaries[m.cells[0]]
    attack = s["attacks"][s["headline_attack"]]
    flipped = s.get("flipped_auc_score")
    lines.append(
        f"Digits ({s['n_train']} examples, 10% flipped), {s['n_models']} models: mean memorization score "
        f"{s['mean_score']:.3f}, {s['share_above_0_5']:.1%} of examples above 0.5"
        + (f"; the score finds the flipped labels with ROC AUC {flipped:.3f}" if flipped is not None else "")
        + f"; LiRA finds training members with AUC {attack['auc']:.3f} and {attack['tpr_at_0_1pct']:.1%} TPR at "
          f"0.1% FPR; split-half r = {s['split_half_correlation']:.3f}."
    )
    li = s.get("label_issues")
    if li and "f1" in li:
        lines.append(
            f"Label issues: {li['flagged']} of {s['n_train']} labels flagged as likely wrong, each with a suggested "
            f"label; against the {s['n_flipped']} flipped ones: precision {li['precision']:.1%}, recall "
            f"{li['recall']:.1%} (see the report's gallery, given → suggested).")
    return DemoResult(lines, report, [d.study_dir, c.study_dir, m.study_dir])
