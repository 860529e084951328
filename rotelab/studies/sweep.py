"""``sweep``: two causes of memorization as curves — too little data, too much capacity.

For each training-set size (a stratified subset of the pool; ``all`` = the whole pool) at
the default width, and for each width at the default size, a stratified k-fold job measures
the train − validation gap in accuracy and loss, the validation accuracy and, with label
noise, the fraction of flipped training labels the model reproduces. The third cause, no
regularization, is :func:`rotelab.compare`.

Label noise is injected once into the whole pool; the subsets are stratified on (clean
label, flipped) so every size keeps both the class proportions and the noise fraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rotelab.errors import InvalidInputError
from rotelab.executors import make_executor, run_jobs
from rotelab.models import check_model_spec
from rotelab.options import DEFAULT_DATA, DEFAULT_MODEL, split_options
from rotelab.plan import Folds, Job, make_folds, subset_index
from rotelab.progress import Progress
from rotelab.studies.cv import fold_metrics, mean_ci, paired_ratio
from rotelab.studies.prepare import (
    ModelArg, Prepared, make_progress, open_study, prepare, result_json, short_repr, study_function,
    write_table,
)
from rotelab.validation import check_int

#: Columns of both curve tables, each a mean over folds; the first three also get a 95% CI.
CURVE_METRICS = ("acc_gap", "loss_gap", "val_acc", "train_acc", "test_acc", "train_loss", "val_loss")
#: the range each curve cannot leave, to which its CI is cut (losses: unbounded; the rest: [0, 1])
_BOUNDS = {"acc_gap": (-1.0, 1.0), "loss_gap": None, "train_loss": None, "val_loss": None}


@dataclass(frozen=True, eq=False)
class SweepResult:
    """Two curve tables and their figures.

    ``sizes``: one row per training-set size (``train_size``: examples in the subset, of
    which ``(folds − 1)/folds`` train each fold) at width ``width``; ``widths``: one row per
    width at size ``train_size``. Columns: ``acc_gap`` = train − validation accuracy and
    ``loss_gap`` = validation − train loss (higher = more memorized), ``val_acc`` (on clean
    labels), each with ``*_ci_low``/``*_ci_high`` (95% Student-t across folds, Nadeau–Bengio corrected);
    ``train_acc``, ``test_acc``, ``train_loss``, ``val_loss``; with label noise
    ``noisy_memorized`` (+ CI) and ``n_noisy``; ``params`` (trainable parameters of one
    model); ``model_epochs``.
    """

    study_dir: str
    dataset: dict
    model: str
    sizes: pd.DataFrame | None
    widths: pd.DataFrame | None
    figures: dict[str, str]  # "sizes"/"widths" -> PNG path
    folds: int
    label_noise: float
    epochs: int
    default_width: int | None
    default_size: int
    seconds: float

    def __repr__(self) -> str:
        return short_repr(self, f"{0 if self.sizes is None else len(self.sizes)} sizes",
                          f"{0 if self.widths is None else len(self.widths)} widths", f"{self.folds}-fold")

    def to_dict(self) -> dict:
        return result_json(self, "sizes", "widths")


def parse_sizes(sizes: str | Sequence[int | str] | None, *, pool: int, n_classes: int, folds: int) -> list[int]:
    """``"100,300,all"`` -> sorted unique sizes; each in [n_classes·folds, pool]."""
    if sizes is None:
        return []
    items = [s.strip() for s in sizes.split(",")] if isinstance(sizes, str) else list(sizes)
    items = [s for s in items if s != ""]
    out = []
    for s in items:
        if isinstance(s, str) and s.lower() == "all":
            n = pool
        else:
            try:
                n = int(s) if isinstance(s, str) else s
            except ValueError:
                raise InvalidInputError(f"train size must be a whole number or 'all', got {s!r}") from None
            n = check_int("train size", n, minimum=1)
        out.append(check_size(n, pool=pool, n_classes=n_classes, folds=folds))
    return sorted(set(out))


def check_size(n: int, *, pool: int, n_classes: int, folds: int) -> int:
    if n > pool:
        raise InvalidInputError(f"train size {n} is larger than the training pool ({pool} examples); "
                                f"use at most {pool} or 'all'")
    need = n_classes * max(folds, 2)
    if n < need:
        raise InvalidInputError(f"train size {n} is too small for {folds}-fold cross-validation of {n_classes} "
                                f"classes: need at least {need}")
    return n


def parse_widths(widths: str | Sequence[int] | None) -> list[int]:
    if widths is None:
        return []
    items = [w.strip() for w in widths.split(",")] if isinstance(widths, str) else list(widths)
    out = []
    for w in items:
        if w == "":
            continue
        try:
            w = int(w) if isinstance(w, str) else w
        except ValueError:
            raise InvalidInputError(f"width must be a whole number, got {w!r}") from None
        out.append(check_int("width", w, minimum=1, maximum=1_000_000))
    return sorted(set(out))


@study_function("sweep")
def sweep(data: Any = DEFAULT_DATA, model: ModelArg = DEFAULT_MODEL, *,
          progress: bool | Progress | None = None, **options: Any) -> SweepResult:
    """Train-validation gap (and noisy labels memorized) against training-set size and width.

    ``train_sizes``: comma-separated sizes or ``all`` (the whole pool), or None to skip that
    curve; ``widths``: hidden units (mlp) or channels (cnn, cnn1d), or None to skip. The size
    curve uses ``width`` (the family default when None); the width curve uses ``train_size``
    examples (the whole pool when None). ``label_noise`` is injected once into the pool.
    Every input is validated before anything is written; a rerun reuses finished jobs.
    """
    own, opts = split_options("sweep", options)
    folds = check_int("folds", own.folds, minimum=1, maximum=1000)
    p = prepare("sweep", data, model, opts, subset_data=False)
    pool, c = p.ds.n_train, p.ds.n_classes
    sizes = parse_sizes(own.train_sizes or None, pool=pool, n_classes=c, folds=folds)
    width_list = parse_widths(own.widths or None)
    if not sizes and not width_list:
        raise InvalidInputError("nothing to sweep: give train sizes, widths or both")
    default_size = pool if opts.train_size is None else check_size(
        check_int("train size", opts.train_size, minimum=1), pool=pool, n_classes=c, folds=folds)
    if width_list and p.model.family == "custom":
        raise InvalidInputError("a width sweep needs a built-in model; pass widths=None for your own model factory")
    points, fold_of = _plan(p, sizes, width_list, default_size, folds=folds)
    config = {"data": p.ds.name, "data_fingerprint": p.examples.fingerprint,
              "model_fingerprint": p.model.fingerprint, "recipe": p.recipe.to_dict(), "sizes": sizes,
              "widths": width_list, "default_size": default_size, "folds": folds, "seed": opts.seed,
              "label_noise": opts.label_noise}
    jobs = [Job(label=f"{axis} {value} / {folds} folds", recipe=recipe, job_seed=opts.seed,
                members=fold_of[value if axis == "size" else default_size].members(), model=p.model.ref(recipe, p.ds))
            for axis, value, recipe in points]
    with open_study(p, config, own) as store:
        results = run_jobs(jobs, p.examples, store=store, progress=make_progress(progress, "sweep"),
                           device=opts.device, threads=opts.threads, executor=make_executor(opts))
        tables = _tables(p, points, results, fold_of, default_size, folds=folds)
        figures = _figures(p, store.path, tables, folds=folds, default_size=default_size)
        for name, t in tables.items():
            if t is not None:
                write_table(store, f"{name}.csv", t)
        result = SweepResult(
            study_dir=str(store.path), dataset=p.ds.summary(), model=p.model.spec.name, sizes=tables["sizes"],
            widths=tables["widths"], figures=figures, folds=folds, label_noise=float(opts.label_noise),
            epochs=p.recipe.epochs, default_width=p.model.spec.width, default_size=default_size,
            seconds=float(sum(float(o["seconds"]) for o in results)))
        store.write_json("result.json", result.to_dict())
    return result


def _plan(p: Prepared, sizes: list[int], widths: list[int], default_size: int, *, folds: int):
    """The sweep's points (axis, value, recipe) and the folds of every size they use."""
    ds = p.ds
    specs = {w: check_model_spec(replace(p.model.spec, width=w), ds.feature_shape, ds.n_classes) for w in widths}
    fold_of: dict[int, Folds] = {}
    for n in sorted(set(sizes) | ({default_size} if widths else set())):
        idx = subset_index(ds.clean_labels, ds.noisy_mask, n, seed=p.options.seed)
        fold_of[n] = make_folds(p.examples, pool_idx=idx, folds=folds, repeats=1, seed=p.options.seed)
    points = [("size", n, p.recipe) for n in sizes] + \
        [("width", w, replace(p.recipe, model=specs[w])) for w in widths]
    return points, fold_of


def _tables(p: Prepared, points, results, fold_of: dict[int, Folds], default_size: int, *, folds: int) -> dict:
    """One row per point: gaps, accuracies, noisy labels memorized, with 95% CIs (Nadeau–Bengio
    corrected: the folds' training sets overlap)."""
    ex, has_noise = p.examples, bool(p.ds.noisy_mask.any())
    rows: dict[str, list[dict]] = {"size": [], "width": []}
    for (axis, value, recipe), out in zip(points, results):
        n = value if axis == "size" else default_size
        f = fold_of[n]
        m = fold_metrics(out, f, ex, has_noise)
        row: dict[str, Any] = {"train_size": n, "width": recipe.model.width,
                               "params": _params(p.model.ref(recipe, p.ds).factory)}
        for name in CURVE_METRICS:
            mean, lo, hi = mean_ci(m[name], paired_ratio(folds), _BOUNDS.get(name, (0.0, 1.0)))
            row[name] = mean
            if name in ("acc_gap", "loss_gap", "val_acc"):
                row.update({f"{name}_ci_low": lo, f"{name}_ci_high": hi})
        if has_noise:
            mean, lo, hi = mean_ci(m["noisy_memorized"], paired_ratio(folds))
            row.update(noisy_memorized=mean, noisy_memorized_ci_low=lo, noisy_memorized_ci_high=hi,
                       n_noisy=int((f.train | f.val)[0, : ex.n_pool][p.ds.noisy_mask].sum()))
        row["model_epochs"] = int(np.asarray(out["epochs_run"]).sum())
        rows[axis].append(row)
    return {"sizes": pd.DataFrame(rows["size"]) if rows["size"] else None,
            "widths": pd.DataFrame(rows["width"]) if rows["width"] else None}


def _figures(p: Prepared, path: Path, tables: dict, *, folds: int, default_size: int) -> dict[str, str]:
    noise = p.options.label_noise
    tail = f" · {folds}-fold · {p.recipe.epochs} epochs" + (f" · label noise {noise:.0%}" if noise else "")
    figures = {}
    if tables["sizes"] is not None:
        figures["sizes"] = str(_figure(tables["sizes"], "train_size", path / "gap_vs_train_size.png",
                                       xlabel="training-set size (examples, before the folds)",
                                       title=f"{p.ds.name} · {p.model.spec.name} width {p.model.spec.width}{tail}"))
    if tables["widths"] is not None:
        figures["widths"] = str(_figure(tables["widths"], "width", path / "gap_vs_width.png",
                                        xlabel="width (hidden units / channels)",
                                        title=f"{p.ds.name} · {p.model.spec.name} on {default_size} examples{tail}"))
    return figures


def _params(factory) -> int:
    return int(sum(p.numel() for p in factory().parameters() if p.requires_grad))


def _figure(table: pd.DataFrame, x: str, path: Path, *, xlabel: str, title: str) -> Path:
    """Gaps (and noisy labels memorized) against ``x`` on a log axis, 95% CIs as error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    xs = table[x].to_numpy(dtype=float)

    def line(ax, col, label, **kw):
        y = table[col].to_numpy(dtype=float)
        if f"{col}_ci_low" in table:
            err = np.abs(np.stack([y - table[f"{col}_ci_low"].to_numpy(dtype=float),
                                   table[f"{col}_ci_high"].to_numpy(dtype=float) - y]))
            ax.errorbar(xs, y, yerr=np.nan_to_num(err), marker="o", capsize=3, label=label, **kw)
        else:
            ax.plot(xs, y, marker="o", label=label, **kw)

    line(left, "acc_gap", "train − validation accuracy")
    if "noisy_memorized" in table:
        line(left, "noisy_memorized", "noisy labels memorized")
    line(left, "val_acc", "validation accuracy (clean)", linestyle="--")
    left.set_ylabel("percent")
    left.yaxis.set_major_formatter(PercentFormatter(1.0))
    left.axhline(0, color="grey", linewidth=0.5)
    left.legend(fontsize="small")
    line(right, "loss_gap", "validation − train loss", color="C3")
    right.set_ylabel("loss gap (nats)")
    right.axhline(0, color="grey", linewidth=0.5)
    right.legend(fontsize="small")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_xticks(xs, [str(int(v)) for v in xs])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)
    return path


__all__ = ["SweepResult", "sweep"]
