"""``diagnose``: train a few seeds with a validation split and read the signs of memorization."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rotelab.executors import make_executor, run_jobs
from rotelab.measures.curves import Signs, Thresholds, read_signs
from rotelab.options import DEFAULT_DATA, DEFAULT_MODEL, split_options
from rotelab.plan import Job, validation_members
from rotelab.progress import Progress
from rotelab.store import jsonable
from rotelab.studies.prepare import ModelArg, make_progress, open_study, prepare, short_repr, study_function
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
    test_shift: bool = False  # validation and test accuracy disagree: the test set is from another distribution
    note: str = ""  # says so in one line
    evidence: dict[str, dict] = field(default_factory=dict)  # sign -> value, threshold, unit, text

    def to_dict(self) -> dict:
        """JSON-ready: NaN as None (a curve of a split with no examples is NaN)."""
        return jsonable(asdict(self))

    def __repr__(self) -> str:
        f = self.final
        onset = f" from epoch {self.onset_epoch}" if self.onset_epoch and self.verdict == "memorizing" else ""
        severity = f" ({self.severity})" if self.severity else ""
        accs = " / ".join(f"{k} {100 * f[f'{k}_acc']:.1f}%" for k in ("train", "val", "test")
                          if f.get(f"{k}_acc") == f.get(f"{k}_acc"))  # NaN (no such split) left out
        return short_repr(self, f"{self.verdict}{severity}{onset}", accs, f"{self.seeds} seed(s)")

    def summary_rows(self, every: int | None = None) -> list[dict]:
        """One row per (some) epoch for tables, the first and the last always: train/val/test
        accuracy and loss."""
        n = len(self.epochs)
        every = every or max(1, n // 12)
        picks = sorted(set([0] + list(range(every - 1, n, every)) + [n - 1] +
                           ([self.epochs.index(self.onset_epoch)] if self.onset_epoch in self.epochs else [])))
        return [{"epoch": self.epochs[i], **{k: self.curves[k][i] for k in self.curves}} for i in picks]


@study_function("diagnose")
def diagnose(
    data: Any = DEFAULT_DATA,
    model: ModelArg = DEFAULT_MODEL,
    *,
    thresholds: Thresholds = Thresholds(),
    progress: bool | Progress | None = None,
    **options: Any,
) -> DiagnoseResult:
    """Train ``seeds`` models, each on its own stratified split of the training pool into
    training and validation (``val_fraction``), and read the three signs of memorization.

    The test split is never trained on: it is the "new data" of the third sign.
    """
    own, opts = split_options("diagnose", options)
    seeds = check_int("seeds", own.seeds, minimum=1, maximum=10_000)
    val_fraction = check_float("validation fraction", own.val_fraction, low=0.0, high=1.0, low_open=True,
                               high_open=True)
    p = prepare("diagnose", data, model, opts)
    members = validation_members(p.examples, seeds=seeds, val_fraction=val_fraction, seed=opts.seed)
    config = {"data": p.ds.name, "data_fingerprint": p.examples.fingerprint, "recipe": p.recipe.to_dict(),
              "seeds": seeds, "seed": opts.seed, "val_fraction": val_fraction, "train_size": opts.train_size,
              "label_noise": opts.label_noise, "model_fingerprint": p.model.fingerprint}
    job = Job(label=f"{seeds} seed(s)", recipe=p.recipe, members=members, job_seed=opts.seed,
              model=p.model.ref(p.recipe, p.ds))
    with open_study(p, config, own) as store:
        (out,) = run_jobs([job], p.examples, store=store, progress=make_progress(progress, "diagnose"),
                          device=opts.device, threads=opts.threads, executor=make_executor(opts))
        result = _summarize(out, store_dir=str(store.path), ds=p.ds, model=p.model.spec.name, seeds=seeds,
                            thresholds=thresholds, n_val=float(members.val_mask.sum(1).mean()),
                            n_test=float(p.examples.test_mask.sum()),
                            fit_acc=_clean_train_acc(out, members, p.examples) if p.examples.noisy else None)
        store.write_json("result.json", result.to_dict())
    return result


def _clean_train_acc(out: dict, members, ex) -> float:
    """Final accuracy on the training examples' clean labels, mean over seeds (label noise only)."""
    pred, train = out["pred"].astype(np.int64), members.train_mask
    return float(np.mean([(pred[k][train[k]] == ex.clean[train[k]]).mean() for k in range(len(pred))]))


def _summarize(out: dict, *, store_dir: str, ds, model: str, seeds: int, thresholds: Thresholds,
               n_val: float, n_test: float, fit_acc: float | None = None) -> DiagnoseResult:
    """Mean curves over the seeds, and the signs read from them; ``n_val`` (each seed's
    validation examples) and ``n_test`` tell the test-shift check how noisy each accuracy is.
    Each seed validates on its own split but all share one test split: counting one seed's
    validation examples, not all seeds', keeps the check from calling noise a shift."""
    names = ("train_acc", "val_acc", "test_acc", "train_loss", "val_loss", "test_loss")
    mean = {n: np.nanmean(out[n], axis=0) for n in names}
    std = {n: np.nanstd(out[n], axis=0) for n in names}
    signs: Signs = read_signs(train_acc=mean["train_acc"], val_acc=mean["val_acc"], train_loss=mean["train_loss"],
                              val_loss=mean["val_loss"], test_acc=float(mean["test_acc"][-1]), thresholds=thresholds,
                              n_val=n_val, n_test=n_test, fit_acc=fit_acc)
    epochs = [int(e) for e in out["epoch"]]
    final = {n: float(mean[n][-1]) for n in names}
    final["acc_gap"] = final["train_acc"] - final["val_acc"]
    final["loss_gap"] = final["val_loss"] - final["train_loss"]
    final["test_gap"] = final["train_acc"] - final["test_acc"]
    if fit_acc is not None:
        final["train_acc_clean"] = fit_acc  # on the true labels of the training examples
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
        test_shift=signs.test_shift,
        note=signs.note,
        evidence={k: asdict(v) for k, v in signs.evidence.items()},
    )
