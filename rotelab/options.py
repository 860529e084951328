"""Every option a study takes, with its default and its unit, in one place.

``TrainingOptions`` holds what all studies share (the data's preparation, the model, the
optimizer, where and how to run); each study kind adds its own few (``STUDY_OPTIONS``).
The CLI, the study files (``rotelab run study.toml``) and the Python functions are built
from these tables, so a default is written once, here (as airbench keeps its
hyperparameters: one table, units in the comments).

This module imports nothing heavy: ``rotelab --help`` reads it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_DATA = "mnist1d"  # every command's default dataset: the one an MLP memorizes
DEFAULT_MODEL = "mlp"
#: Technique cells ``compare`` runs when none are given.
DEFAULT_TECHNIQUES = "baseline,augment,dropout,l1,l2,augment+dropout+l2"

#: Epochs by model family when none are given: enough for each to fit its training data,
#: also in the small-data regime (300 examples are only 3 steps an epoch at batch 100).
DEFAULT_EPOCHS = {"mlp": 100, "cnn": 40, "cnn1d": 60, "resnet": 30, "custom": 50}
#: ``memorization`` trains longer: the scores need models that fit their subset, mislabeled
#: examples included, and those are fitted last (on digits with 10% flipped labels an MLP
#: fits ~10% of its flipped examples after 30 epochs and ~90% after 100).
MEMORIZATION_EPOCHS = {**DEFAULT_EPOCHS, "cnn1d": 100, "resnet": 60}


def option(default: Any, help: str, *, cli_type: Any = None) -> Any:
    """A dataclass field with its help line (``cli_type``: the type the CLI parses, when the
    Python API takes more than that, e.g. a list of techniques as well as a string)."""
    return field(default=default, metadata={"help": help, "cli_type": cli_type})


def _epochs_help(table: dict[str, int]) -> str:
    return "passes over each model's training examples; default by model family: " + ", ".join(
        f"{k} {v}" for k, v in table.items() if k != "custom") + f", your own model {table['custom']}"


@dataclass(frozen=True)
class TrainingOptions:
    """What every study shares. ``None`` means "the default for this data or model"."""

    # ── data ─────────────────────────────────────────────────────────────────────────
    train_size: int | None = option(None, "keep a stratified subset of N training examples (the small-data regime)")
    label_noise: float = option(0.0, "flip this seeded fraction of the training labels to a wrong class, 0 <= p < 1")
    label_column: str | None = option(None, "CSV files: the column that holds the labels (default 'label')")
    standardize: bool | None = option(
        None, "scale each feature to mean 0, std 1 with statistics from each model's own training part; "
              "default: on for tabular (vector) data, off for images and sequences")
    # ── model ────────────────────────────────────────────────────────────────────────
    width: int | None = option(None, "hidden units (mlp) or channels (cnn, cnn1d, resnet's first stage); default by family")
    depth: int | None = option(None, "hidden layers (mlp), convolution layers (cnn, cnn1d) or residual blocks per stage (resnet); default by family")
    dropout: float = option(0.0, "dropout probability in the model (the dropout technique sets it per cell)")
    # ── optimisation ─────────────────────────────────────────────────────────────────
    epochs: int | None = option(None, _epochs_help(DEFAULT_EPOCHS))
    batch_size: int = option(100, "examples per step, per model")
    lr: float = option(1e-2, "learning rate (Adam at 1e-2 is the MNIST-1D paper's setting)")
    optimizer: str = option("adam", "adam (AdamW) or sgd (momentum 0.9)")
    schedule: str = option("cosine", "learning rate over the run: cosine (anneals to 0) or constant")
    precision: str = option("fp32", "fp32, or bf16: the forward pass under bf16 autocast, weights and optimizer "
                                    "state in fp32 (for GPUs; most CPUs run bf16 slower)")
    # ── where and how ────────────────────────────────────────────────────────────────
    device: str = option("auto", "auto (CUDA when present), cpu or cuda")
    threads: int | None = option(None, "CPU threads per job; default: the cores other processes leave free "
                                       "(env ROTELAB_THREADS)")
    executor: str = option("local", "local (jobs one after another in this process) or ray (one Ray task per "
                                     "job, on this machine or a cluster; pip install 'rotelab[ray]')")
    ray_address: str | None = option(None, "--executor ray: the cluster to join (auto, host:port or "
                                           "ray://host:port); default: env RAY_ADDRESS, else a local Ray")
    cpus_per_job: float | None = option(None, "--executor ray: CPUs each job's task reserves, and its torch "
                                              "threads; default: --threads, else 1")
    gpus_per_job: float | None = option(None, "--executor ray: GPUs each job's task reserves; a fraction (0.25) "
                                              "lets jobs share a GPU, each capped to that share of its memory; "
                                              "default: 1 where the cluster has GPUs and --device is not cpu")
    seed: int = option(0, "seed for splits, label noise, subsets and initialisation")
    runs_dir: str = option("runs", "where studies are stored (a rerun reuses every finished job)")


@dataclass(frozen=True)
class DiagnoseOptions:
    """``diagnose``: a few seeds, each with its own validation split."""

    seeds: int = option(3, "models trained, each with its own stratified split and seed")
    val_fraction: float = option(0.2, "share of the training pool held out for validation, 0 < f < 1")


@dataclass(frozen=True)
class CompareOptions:
    """``compare``: technique cells by (repeated) stratified k-fold cross-validation."""

    techniques: str = option(DEFAULT_TECHNIQUES, "comma-separated cells; techniques joined by + with optional "
                                                 "strengths, e.g. baseline,l2=0.1,augment+dropout=0.3",
                             cli_type=str)
    folds: int = option(5, "stratified folds (1 = one 80/20 train/validation split)")
    repeats: int = option(1, "repeats of the k-fold, each with its own shuffle")


@dataclass(frozen=True)
class SweepOptions:
    """``sweep``: the gap against training-set size and against width."""

    train_sizes: str | None = option("100,300,1000,all", "training-set sizes (stratified subsets of the pool), "
                                                         "comma-separated; 'all' = the pool; '' skips this curve",
                                     cli_type=str)
    widths: str | None = option("32,128,512", "widths (hidden units / channels), comma-separated; '' skips "
                                              "this curve", cli_type=str)
    folds: int = option(3, "stratified folds per point")


@dataclass(frozen=True)
class MemorizationOptions:
    """``memorization``: subset models for per-example scores and membership inference."""

    models: int = option(256, "subset models to train (more = tighter estimates)")
    subset: float = option(0.7, "fraction of the training pool each model trains on, 0 < f < 1")
    techniques: str | None = option(None, "comma-separated technique cells, e.g. baseline,dropout,l2 "
                                          "(default: baseline)", cli_type=str)
    chunk: int = option(64, "models per stored job (an interrupt loses at most one job)")
    reference_models: int | None = option(None, "score each target with only N reference models (LiRA, RMIA): "
                                                "what an auditor with few models finds; default: all the others")


#: Strengths ``adapt`` can tune; the first is its default.
ADAPT_TECHNIQUES = ("l2", "dropout", "label-smoothing", "mixup", "augment")
#: Adaptive schemes ``adapt`` runs: population based training, gap feedback, adaptive weight decay.
ADAPT_SCHEMES = ("pbt", "gap", "awd")


@dataclass(frozen=True)
class AdaptOptions:
    """``adapt``: adaptive regularization against a grid of fixed strengths, by k-fold CV."""

    technique: str = option("l2", "the strength the grid, random search, PBT and gap feedback tune: "
                                  + ", ".join(ADAPT_TECHNIQUES))
    grid: int = option(8, "grid points = members per fold of the grid and of random search; each adaptive "
                          "scheme runs at 1/4 and at 1x this compute")
    low: float | None = option(None, "lowest strength of the grid and search range (default by technique)")
    high: float | None = option(None, "highest strength (default by technique)")
    schemes: str = option(",".join(ADAPT_SCHEMES), "comma-separated adaptive schemes: " + ", ".join(ADAPT_SCHEMES))
    period: int | None = option(None, "epochs between PBT exploit steps (a perturbed strength needs a few epochs "
                                      "to show); default epochs/20")
    gap_period: int = option(1, "epochs between gap-feedback steps (a controller reacts best at once: with 5, "
                                "noisy digits kept twice the flipped labels)")
    inner_fraction: float = option(0.2, "share of each fold's training part held out as the inner validation "
                                        "split that adaptive schemes steer on and that picks a member per fold")
    folds: int = option(5, "stratified folds (the same as compare's)")


STUDY_OPTIONS: dict[str, type] = {
    "diagnose": DiagnoseOptions, "compare": CompareOptions, "sweep": SweepOptions,
    "memorization": MemorizationOptions, "adapt": AdaptOptions,
}
#: Help lines that differ from the shared ones for one study kind.
HELP_OVERRIDES: dict[tuple[str, str], str] = {
    ("sweep", "train_size"): "examples for the width curve (default: the whole pool); the size curve sets its own",
    ("memorization", "epochs"): _epochs_help(MEMORIZATION_EPOCHS),
}


def option_names(kind: str) -> list[str]:
    """Every option ``kind`` takes besides data and model: its own first, then the shared ones."""
    return [f.name for f in fields(STUDY_OPTIONS[kind])] + [f.name for f in fields(TrainingOptions)]


def option_fields(kind: str) -> list[Any]:
    """The dataclass fields behind :func:`option_names`, in the same order."""
    return list(fields(STUDY_OPTIONS[kind])) + list(fields(TrainingOptions))


def help_of(kind: str, f: Any) -> str:
    return HELP_OVERRIDES.get((kind, f.name), f.metadata["help"])


def split_options(kind: str, values: dict[str, Any]) -> tuple[Any, TrainingOptions]:
    """``{name: value}`` -> (the study's own options, the shared ``TrainingOptions``).

    Names must come from :func:`option_names`; values are checked later, where they are used.
    """
    own = STUDY_OPTIONS[kind]
    own_names = {f.name for f in fields(own)}
    shared_names = {f.name for f in fields(TrainingOptions)}
    unknown = set(values) - own_names - shared_names
    if unknown:
        raise TypeError(f"{kind}() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    return (own(**{k: v for k, v in values.items() if k in own_names}),
            TrainingOptions(**{k: v for k, v in values.items() if k in shared_names}))


__all__ = ["ADAPT_SCHEMES", "ADAPT_TECHNIQUES", "AdaptOptions", "CompareOptions", "DEFAULT_DATA", "DEFAULT_EPOCHS", "DEFAULT_MODEL", "DEFAULT_TECHNIQUES",
           "DiagnoseOptions", "MEMORIZATION_EPOCHS", "MemorizationOptions", "STUDY_OPTIONS", "SweepOptions",
           "TrainingOptions", "option_fields", "option_names", "split_options"]
