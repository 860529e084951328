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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rotelab.errors import InvalidInputError
from rotelab.plan import Job
from rotelab.progress import Progress
from rotelab.executors import run_jobs
from rotelab.studies.common import (
    Examples, ModelArg, base_recipe, check_training, load_study_data, make_progress, model_source, open_study,
    resolve_model, study_id,
)
from rotelab.store import jsonable
from rotelab.studies.compare import fold_metrics, make_folds, summarize, write_table
from rotelab.validation import check_int

#: Columns of both curve tables, each a mean over folds; the first three also get a 95% CI.
CURVE_METRICS = ("acc_gap", "loss_gap", "val_acc", "train_acc", "test_acc", "train_loss", "val_loss")


@dataclass(frozen=True, eq=False)
class SweepResult:
    """Two curve tables and their figures.

    ``sizes``: one row per training-set size (``train_size``: examples in the subset, of
    which ``(folds − 1)/folds`` train each fold) at width ``width``; ``widths``: one row per
    width at size ``train_size``. Columns: ``acc_gap`` = train − validation accuracy and
    ``loss_gap`` = validation − train loss (higher = more memorized), ``val_acc`` (on clean
    labels), each with ``*_ci_low``/``*_ci_high`` (95% Student-t across folds);
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

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("sizes", "widths")}
        for name in ("sizes", "widths"):
            t = getattr(self, name)
            d[name] = None if t is None else t.to_dict(orient="records")
        return jsonable(d)


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


def subset_index(clean: np.ndarray, noisy: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` pool examples, stratified on (clean label, flipped) when every
    stratum has two examples, else on the clean label."""
    if n == len(clean):
        return np.arange(n)
    from sklearn.model_selection import train_test_split

    strata = clean * 2 + noisy.astype(np.int64)
    _, counts = np.unique(strata, return_counts=True)
    if counts.min() < 2 or len(counts) > min(n, len(clean) - n):
        strata = clean
    idx, _ = train_test_split(np.arange(len(clean)), train_size=n, random_state=seed, stratify=strata)
    return np.sort(idx)


def sweep(
    data="digits",
    model: ModelArg = "mlp",
    *,
    train_sizes: str | Sequence[int | str] | None = "100,300,1000,all",
    widths: str | Sequence[int] | None = "32,128,512",
    folds: int = 3,
    train_size: int | None = None,
    label_noise: float = 0.0,
    epochs: int | None = None,
    width: int | None = None,
    depth: int | None = None,
    dropout: float = 0.0,
    lr: float = 1e-2,
    batch_size: int = 100,
    optimizer: str = "adam",
    schedule: str = "cosine",
    device: str = "auto",
    seed: int = 0,
    runs_dir: str | Path = "runs",
    progress: bool | Progress = False,
) -> SweepResult:
    """Train-validation gap (and noisy labels memorized) against training-set size and width.

    ``train_sizes``: comma-separated sizes or ``all`` (the whole pool), or None to skip that
    curve; ``widths``: hidden units (mlp) or channels (cnn, cnn1d), or None to skip. The size
    curve uses ``width`` (the family default when None); the width curve uses ``train_size``
    examples (the whole pool when None). ``label_noise`` is injected once into the pool.
    Every input is validated before anything is written; a rerun reuses finished jobs.
    """
    folds = check_int("folds", folds, minimum=1, maximum=1000)
    ds = load_study_data(data, train_size=None, label_noise=label_noise, seed=seed)
    pool, c = ds.n_train, ds.n_classes
    sizes = parse_sizes(train_sizes, pool=pool, n_classes=c, folds=folds)
    width_list = parse_widths(widths)
    if not sizes and not width_list:
        raise InvalidInputError("nothing to sweep: give train sizes, widths or both")
    default_size = pool if train_size is None else check_size(
        check_int("train size", train_size, minimum=1), pool=pool, n_classes=c, folds=folds)
    choice = resolve_model(model, ds, width=width, depth=depth, dropout=dropout)
    models = model_source(choice, ds)
    if width_list and choice.family == "custom":
        raise InvalidInputError("a width sweep needs a built-in model; pass widths=None for your own model factory")
    epochs = check_training(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                            schedule=schedule, device=device, family=choice.family)
    base = base_recipe(choice.spec, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                       schedule=schedule)
    from rotelab.models import check_model_spec

    specs = {w: check_model_spec(replace(choice.spec, width=w), ds.feature_shape, c) for w in width_list}

    ex = Examples.of(ds)
    noisy = ds.noisy_mask
    clean_all = np.concatenate([ds.clean_labels, ds.y_test])
    fold_of: dict[int, Any] = {}
    for n in sorted(set(sizes) | ({default_size} if width_list else set())):
        idx = subset_index(ds.clean_labels, noisy, n, seed=seed)
        fold_of[n] = make_folds(ex, clean_all, noisy, pool_idx=idx, folds=folds, repeats=1, seed=seed)

    points = [("size", n, base) for n in sizes] + [("width", w, replace(base, model=specs[w])) for w in width_list]
    config = {"data": ds.name, "data_fingerprint": ds.fingerprint(), "model_fingerprint": choice.fingerprint,
              "recipe": base.to_dict(), "sizes": sizes, "widths": width_list, "default_size": default_size,
              "folds": folds, "seed": seed, "label_noise": label_noise}
    sid = study_id("sweep", ds.name, choice.spec.name, config)
    store = open_study(runs_dir, sid, kind="sweep", config=config, dataset=ds, device=device)

    jobs = [Job(label=f"{axis} {value} / {folds} folds", recipe=recipe,
                members=fold_of[value if axis == "size" else default_size].members(), job_seed=seed)
            for axis, value, recipe in points]
    results = run_jobs(jobs, store=store, models=models, x=ex.x, y=ex.y, test_mask=ex.test_mask, n_classes=c,
                       kind=ds.kind, data_fingerprint=ds.fingerprint(), device=device,
                       progress=make_progress(progress, "sweep"))

    has_noise = bool(noisy.any())
    rows: dict[str, list[dict]] = {"size": [], "width": []}
    for (axis, value, recipe), out in zip(points, results):
        n = value if axis == "size" else default_size
        f = fold_of[n]
        m = fold_metrics(out, f, ex, clean_all, has_noise)
        row: dict[str, Any] = {"train_size": n, "width": recipe.model.width,
                               "params": _params(models(recipe)[0])}
        for name in CURVE_METRICS:
            mean, lo, hi = summarize(m[name])
            row[name] = mean
            if name in ("acc_gap", "loss_gap", "val_acc"):
                row.update({f"{name}_ci_low": lo, f"{name}_ci_high": hi})
        if has_noise:
            mean, lo, hi = summarize(m["noisy_memorized"])
            row.update(noisy_memorized=mean, noisy_memorized_ci_low=lo, noisy_memorized_ci_high=hi,
                       n_noisy=int((f.train | f.val)[0, : ex.n_pool][noisy].sum()))
        row["model_epochs"] = int(np.asarray(out["epochs_run"]).sum())
        rows[axis].append(row)
    size_t = pd.DataFrame(rows["size"]) if rows["size"] else None
    width_t = pd.DataFrame(rows["width"]) if rows["width"] else None

    figures = {}
    tail = f" · {folds}-fold · {epochs} epochs" + (f" · label noise {label_noise:.0%}" if has_noise else "")
    if size_t is not None:
        write_table(store, "sizes.csv", size_t)
        figures["sizes"] = str(_figure(size_t, "train_size", store.path / "gap_vs_train_size.png",
                                       xlabel="training-set size (examples, before the folds)",
                                       title=f"{ds.name} · {choice.spec.name} width {choice.spec.width}{tail}"))
    if width_t is not None:
        write_table(store, "widths.csv", width_t)
        figures["widths"] = str(_figure(width_t, "width", store.path / "gap_vs_width.png",
                                        xlabel="width (hidden units / channels)",
                                        title=f"{ds.name} · {choice.spec.name} on {default_size} examples{tail}"))
    result = SweepResult(
        study_dir=str(store.path), dataset=ds.summary(), model=choice.spec.name, sizes=size_t, widths=width_t,
        figures=figures, folds=folds, label_noise=float(label_noise), epochs=epochs,
        default_width=choice.spec.width, default_size=default_size,
        seconds=float(sum(float(o["seconds"]) for o in results)),
    )
    store.write_json("result.json", result.to_dict())
    store.close()
    return result


def _params(factory) -> int:
    return int(sum(p.numel() for p in factory().parameters() if p.requires_grad))


def _figure(table: pd.DataFrame, x: str, path: Path, *, xlabel: str, title: str) -> Path:
    """Gaps (and noisy labels memorized) against ``x`` on a log axis, 95% CIs as error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
    left.set_ylabel("fraction")
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
