"""Part 5: what a user with their own data meets first: how fast the CLI answers, and a CSV of
tabular features (scikit-learn's breast_cancer) trained with and without standardization,
side by side with scikit-learn's ``make_pipeline(StandardScaler(), MLPClassifier())`` on the
same training parts and the same test split."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def startup(runs: int = 5) -> list[dict]:
    """Median wall seconds of ``rotelab --help`` and ``rotelab diagnose --help`` in fresh processes."""
    rows = []
    for args in (["--help"], ["diagnose", "--help"]):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rotelab", *args], cwd=ROOT, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        rows.append({"command": "rotelab " + " ".join(args), "median_s": statistics.median(times),
                     "runs": runs, "max_s": max(times)})
    return rows


def standardization(seeds: int = 3, sklearn_seeds: int = 5) -> dict:
    """Test accuracy on breast_cancer as CSV: rotelab ``diagnose`` (mean of its seeds) with and
    without standardization, and scikit-learn's MLP with and without a StandardScaler, each
    fitted on the same training parts (the diagnose seeds' 80%) and scored on the same test split."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import rotelab
    from rotelab.data import load_dataset
    from rotelab.plan import Examples, validation_members

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "breast_cancer.csv"
        load_breast_cancer(as_frame=True).frame.to_csv(csv, index=False)
        out = {}
        for name, std in (("rotelab, standardized (default)", True), ("rotelab, --no-standardize", False)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = rotelab.diagnose(str(csv), "mlp", label_column="target", seeds=seeds, standardize=std,
                                     runs_dir=Path(tmp) / "runs")
            out[name] = {"test_acc": r.final["test_acc"], "verdict": r.verdict, "first_loss": r.curves["train_loss"][0]}
        ds = load_dataset(str(csv), label_column="target")
        ex = Examples.of(ds)
        parts = validation_members(ex, seeds=seeds, val_fraction=0.2, seed=0).train_mask
        for name, scaled in (("scikit-learn, StandardScaler + MLPClassifier", True), ("scikit-learn, MLPClassifier", False)):
            accs = []
            for part in parts:
                for s in range(sklearn_seeds):
                    clf = MLPClassifier(random_state=s)
                    clf = make_pipeline(StandardScaler(), clf) if scaled else clf
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        accs.append(clf.fit(ex.x[part], ex.y[part]).score(ds.x_test, ds.y_test))
            out[name] = {"test_acc": float(np.mean(accs)), "se": float(np.std(accs) / np.sqrt(len(accs)))}
        out["n_train"], out["n_test"] = ds.n_train, ds.n_test
        _ = pd  # the CSV is written with pandas
    return out


def markdown(res: dict) -> list[str]:
    lines = ["## 5. Own data: start-up and tabular standardization\n",
             "Start-up: wall seconds of a fresh `python -m rotelab` process (median of "
             f"{res['startup'][0]['runs']}). Goal: under 1.5 s.\n",
             "| command | median s | slowest s |", "|---|---|---|"]
    lines += [f"| `{r['command']}` | **{r['median_s']:.2f}** | {r['max_s']:.2f} |" for r in res["startup"]]
    s = res["standardization"]
    lines += ["", f"breast_cancer as a CSV (`--label-column target`; {s['n_train']} training / {s['n_test']} test "
              "rows): test accuracy. rotelab: `diagnose`, mean of 3 seeds, each on its own 80% of the training "
              "rows; scikit-learn fitted on the same three 80% parts × 5 seeds (mean ± s.e.). Goal: "
              "rotelab within 2 points of scikit-learn's pipeline.\n",
              "| who | test accuracy | note |", "|---|---|---|"]
    for name, v in s.items():
        if isinstance(v, dict):
            note = (f"verdict {v['verdict']}, first-epoch train loss {v['first_loss']:.2f}" if "verdict" in v
                    else f"± {100 * v['se']:.1f}")
            lines.append(f"| {name} | **{100 * v['test_acc']:.1f}%** | {note} |")
    return lines + [""]
