"""A training recipe: everything besides the data and the members that decides a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rotelab.models.zoo import ModelSpec

OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("fp32", "bf16")
SCHEDULES = ("cosine", "constant")
#: Strengths a job can give each member its own value of (``Recipe.member_values``): decoupled
#: weight decay, dropout p, label-smoothing ε, mixup α, augmentation probability, AWD's λ_awd.
MEMBER_KNOBS = ("l2", "dropout", "label_smoothing", "mixup", "augment", "awd")
#: In-training controllers of one per-member strength (``Adaptive.scheme``).
SCHEMES = ("pbt", "gap", "replay")


@dataclass(frozen=True)
class Adaptive:
    """A controller that changes one per-member strength (``knob``) while the job trains.

    ``pbt``: every ``period`` epochs the members of each consecutive group of ``population``
    (one fold's members) are ranked on their validation examples (the inner split); the bottom
    quarter copies weights and optimizer state from the top quarter and perturbs the strength
    (×0.8 or ×1.25, or a fresh draw in [low, high] with probability ``resample``).
    ``gap``: every ``period`` epochs each member's strength is multiplied by ``rate`` when its
    train − validation accuracy gap exceeds its target (``targets``, one per member) by more
    than ``band``, divided by it when the gap is below target − band (underfitting).
    ``replay``: the strength follows ``schedule`` (K, epochs), one row per member.
    """

    scheme: str
    knob: str
    period: int = 1  # epochs between decisions (pbt, gap)
    population: int = 0  # pbt: members that compete (consecutive groups); 0 = all K
    low: float = 0.0  # bounds of the strength
    high: float = 1.0
    log: bool = False  # pbt resampling: log-uniform in [low, high] (else uniform)
    resample: float = 0.25  # pbt: chance that a copy draws a fresh strength instead of perturbing
    rate: float = 1.25  # gap: multiplicative step
    band: float = 0.02  # gap: dead band around the target (accuracy)
    targets: tuple[float, ...] = ()  # gap: target train − validation accuracy gap, one per member
    schedule: tuple[tuple[float, ...], ...] = ()  # replay: (K, epochs)


@dataclass(frozen=True)
class Recipe:
    """One recipe = model + optimizer + epochs + techniques; shared by all members of a job.

    Techniques live here as plain settings so a recipe is hashable and storable; the
    engine applies them (see ``rotelab.techniques``). ``member_values`` gives members of one
    job their own strengths (a fixed grid as one job); ``adaptive`` changes them while training.
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    epochs: int = 30
    batch_size: int = 100
    lr: float = 1e-2  # Adam at 1e-2 is the MNIST-1D paper's setting; fine for digits too
    optimizer: str = "adam"
    momentum: float = 0.9  # sgd only
    schedule: str = "cosine"  # learning rate: "cosine" anneals to 0 over the epochs, or "constant"
    # techniques (0 = off)
    l1: float = 0.0  # penalty λ·Σ|w| on weight matrices/kernels (not biases)
    l2: float = 0.0  # decoupled weight decay on weight matrices/kernels (AdamW / SGD)
    label_smoothing: float = 0.0
    mixup: float = 0.0  # Beta(α, α) mixing coefficient; 0 = off
    cutmix: float = 0.0  # Beta(α, α) box-area coefficient; 0 = off
    augment: tuple[str, ...] = ()  # transform names, see rotelab.techniques.augment
    early_stop: int = 0  # patience in epochs on validation loss; restores the best epoch
    eval_every: int = 1  # record curves every N epochs and the last; 0 = no curves (the final outputs only)
    # fields added after format 1: stored and hashed only when they differ from these defaults,
    # so every job stored before they existed keeps its key
    standardize: bool = False  # scale features per member with its own training statistics
    batch_techniques: tuple[tuple[str, float], ...] = ()  # (name, strength) of techniques with a batch hook
    precision: str = "fp32"  # "bf16": forward under bf16 autocast; weights and optimizer state stay fp32
    awd: float = 0.0  # adaptive weight decay λ_awd (Ghiasi et al. 2023); 0 = off
    member_values: tuple[tuple[str, tuple[float, ...]], ...] = ()  # (knob, K values): per-member strengths
    adaptive: Adaptive | None = None  # a controller of one per-member strength

    def to_dict(self) -> dict:
        d = asdict(self)
        d["augment"] = list(self.augment)
        d["batch_techniques"] = [list(t) for t in self.batch_techniques]
        d["member_values"] = [[n, list(v)] for n, v in self.member_values]
        if d["adaptive"] is not None:
            d["adaptive"] = {k: [list(r) for r in v] if k == "schedule" else list(v) if isinstance(v, tuple) else v
                             for k, v in d["adaptive"].items()}
        for name, default in _ADDED.items():
            if d[name] == default:
                del d[name]
        return d

    def values(self, knob: str) -> tuple[float, ...] | None:
        """The per-member values of ``knob`` (K,), or None when every member has the scalar one."""
        return dict(self.member_values).get(knob)


_ADDED = {"standardize": False, "batch_techniques": [], "precision": "fp32", "awd": 0.0, "member_values": [],
          "adaptive": None}
