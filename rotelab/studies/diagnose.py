"""``diagnose``: train a few seeds with a validation split and read the signs of memorization."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rotelab.engine.train import Members
from rotelab.executors import run_jobs
from rotelab.measures.curves import Signs, Thresholds, read_signs
from rotelab.plan import Job
from rotelab.progress import Progress
from rotelab.studies.common import (
    Examples, ModelArg, base_recipe, check_training, load_study_data, make_progress, model_source, open_study,
    resolve_model, study_id,
)
from rotelab.validation import check_float, check_int


@dataclass(frozen=True)
class DiagnoseResult:
    """Per-epoch curves (mean and std over seeds) and the verdict drawn from them."""

    study_dir: str
    dataset: dict
    model: str
    epochs: list[int]
    curves: dict[str, list[float]]  # name -> (n_epochs,) mean over seeds
    curves_std: dict[str, list[float]]
    verdict: str
    severity: str  # "strong" / "mild" when memorizing (validation or test gap >= 10 points or not)
    onset_epoch: int | None  # 1-based epoch after which validation loss stops falling
    signs: dict[str, bool]
    final: dict[str, float]  # train/val/test accuracy and loss, gaps
    seeds: int
    vectorized: bool
    seconds: float
    thresholds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary_rows(self, every: int | None = None) -> list[dict]:
        """One row per (some) epoch for tables: train/val/test accuracy and loss."""
        n = len(self.epochs)
        every = every or max(1, n // 12)
        picks = sorted(set(list(range(every - 1, n, every)) + [n - 1] +
                           ([self.epochs.index(self.onset_epoch)] if self.onset_epoch in self.epochs else [])))
        return [{"epoch": self.epochs[i], **{k: self.curves[k][i] for k in self.curves}} for i in picks]


def diagnose(
    data="mnist1d",
    model: ModelArg = "mlp",
    *,
    epochs: int | None = None,
    seeds: int = 3,
    train_size: int | None = None,
    label_noise: float = 0.0,
    val_fraction: float = 0.2,
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
    thresholds: Thresholds = Thresholds(),
    progress: bool | Progress = False,
) -> DiagnoseResult:
    """Train ``seeds`` models, each on its own stratified split of the training pool into
    training and validation (``val_fraction``), and read the three signs of memorization.

    ``data``: a built-in name, a dataset file, or a :class:`~rotelab.data.Dataset`;
    ``model``: a built-in family or a zero-argument ``nn.Module`` factory. The test split is
    never trained on: it is the "new data" of the third sign.
    """
    seeds = check_int("seeds", seeds, minimum=1, maximum=10_000)
    val_fraction = check_float("validation fraction", val_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    ds = load_study_data(data, train_size=train_size, label_noise=label_noise, seed=seed)
    choice = resolve_model(model, ds, width=width, depth=depth, dropout=dropout)
    epochs = check_training(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                            schedule=schedule, device=device, family=choice.family)
    recipe = base_recipe(choice.spec, epochs=epochs, batch_size=batch_size, lr=lr,
                         optimizer=optimizer, schedule=schedule)
    ex = Examples.of(ds)
    members = _validation_members(ds, ex, seeds=seeds, val_fraction=val_fraction, seed=seed)

    config = {"data": ds.name, "data_fingerprint": ds.fingerprint(), "recipe": recipe.to_dict(),
              "seeds": seeds, "seed": seed, "val_fraction": val_fraction, "train_size": train_size,
              "label_noise": label_noise, "model_fingerprint": choice.fingerprint}
    sid = study_id("diagnose", ds.name, choice.spec.name, config)
    store = open_study(runs_dir, sid, kind="diagnose", config=config, dataset=ds, device=device)
    job = Job(label=f"{seeds} seed(s)", recipe=recipe, members=members, job_seed=seed)
    (out,) = run_jobs(
        [job], store=store, models=model_source(choice, ds), x=ex.x, y=ex.y, test_mask=ex.test_mask,
        n_classes=ds.n_classes, kind=ds.kind, data_fingerprint=ds.fingerprint(), device=device, progress=make_progress(progress, "diagnose"),
    )
    result = _summarize(out, store_dir=str(store.path), ds=ds, model=choice.spec.name, seeds=seeds,
                        thresholds=thresholds)
    store.write_json("result.json", result.to_dict())
    store.close()
    return result


def _validation_members(ds, ex: Examples, *, seeds: int, val_fraction: float, seed: int) -> Members:
    from sklearn.model_selection import StratifiedShuffleSplit

    from rotelab.errors import InvalidInputError

    n_val = int(round(val_fraction * ds.n_train))
    if n_val < ds.n_classes or ds.n_train - n_val < ds.n_classes:
        raise InvalidInputError(
            f"a validation fraction of {val_fraction} leaves {ds.n_train - n_val} training and {n_val} "
            f"validation examples, too few for {ds.n_classes} classes; use more data or another fraction"
        )
    counts = np.bincount(ds.clean_labels, minlength=ds.n_classes)
    if counts.min() < 2:
        raise InvalidInputError(
            f"class {int(counts.argmin())} has {int(counts.min())} training example(s); a stratified "
            "validation split needs at least 2 per class"
        )
    k = seeds
    train_mask = np.zeros((k, len(ex.y)), dtype=bool)
    val_mask = np.zeros_like(train_mask)
    for i in range(k):
        split = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed + i)
        tr, va = next(split.split(np.zeros(ds.n_train), ds.clean_labels))
        train_mask[i, tr] = True
        val_mask[i, va] = True
    return Members(np.arange(seed, seed + k), train_mask, val_mask)


def _summarize(out: dict, *, store_dir: str, ds, model: str, seeds: int, thresholds: Thresholds) -> DiagnoseResult:
    names = ("train_acc", "val_acc", "test_acc", "train_loss", "val_loss", "test_loss")
    mean = {n: np.nanmean(out[n], axis=0) for n in names}
    std = {n: np.nanstd(out[n], axis=0) for n in names}
    signs: Signs = read_signs(train_acc=mean["train_acc"], val_acc=mean["val_acc"], train_loss=mean["train_loss"],
                              val_loss=mean["val_loss"], test_acc=float(mean["test_acc"][-1]), thresholds=thresholds)
    epochs = [int(e) for e in out["epoch"]]
    final = {n: float(mean[n][-1]) for n in names}
    final["acc_gap"] = final["train_acc"] - final["val_acc"]
    final["loss_gap"] = final["val_loss"] - final["train_loss"]
    final["test_gap"] = final["train_acc"] - final["test_acc"]
    return DiagnoseResult(
        study_dir=store_dir,
        dataset=ds.summary(),
        model=model,
        epochs=epochs,
        curves={n: [float(v) for v in mean[n]] for n in names},
        curves_std={n: [float(v) for v in std[n]] for n in names},
        verdict=signs.verdict,
        severity=signs.severity,
        onset_epoch=None if signs.onset is None else epochs[signs.onset],
        signs={"train_high_val_low": signs.train_high_val_low, "loss_gap_widening": signs.loss_gap_widening,
               "poor_on_new_data": signs.poor_on_new_data},
        final=final,
        seeds=seeds,
        vectorized=bool(out["vectorized"]),
        seconds=float(out["seconds"]),
        thresholds=asdict(thresholds),
    )
