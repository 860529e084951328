"""A training recipe: everything besides the data and the members that decides a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rotelab.models.zoo import ModelSpec

OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("fp32", "bf16")
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class Recipe:
    """One recipe = model + optimizer + epochs + techniques; shared by all members of a job.

    Techniques live here as plain settings so a recipe is hashable and storable; the
    engine applies them (see ``rotelab.techniques``).
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
    eval_every: int = 1  # record curves every N epochs; 0 = only at the end
    # fields added after format 1: stored and hashed only when they differ from these defaults,
    # so every job stored before they existed keeps its key
    standardize: bool = False  # scale features per member with its own training statistics
    batch_techniques: tuple[tuple[str, float], ...] = ()  # (name, strength) of techniques with a batch hook
    precision: str = "fp32"  # "bf16": forward under bf16 autocast; weights and optimizer state stay fp32

    def to_dict(self) -> dict:
        d = asdict(self)
        d["augment"] = list(self.augment)
        d["batch_techniques"] = [list(t) for t in self.batch_techniques]
        for name, default in _ADDED.items():
            if d[name] == default:
                del d[name]
        return d


_ADDED = {"standardize": False, "batch_techniques": [], "precision": "fp32"}
