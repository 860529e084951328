"""Controllers that change a per-member strength while a job trains: PBT, gap feedback, replay.

The decisions are small pure functions on numpy arrays (:func:`pbt_pairs`, :func:`perturb`,
:class:`GapController`, :func:`lineage`), tested on their own; :func:`exploit` is the one
step that touches the members (an index-copy along the member axis); :class:`Controller`
runs a recipe's :class:`~rotelab.engine.recipe.Adaptive` inside ``train_job`` and records,
per member and epoch, the strength it trained with (``strength`` (K, E)) and whose weights
it continued from (``parent`` (K, E): itself, or the member it copied at that epoch's start).

Caution: PBT and gap feedback decide on each member's *validation* examples. In a study
those must be an inner split carved from the fold's training part (``rotelab.plan``), never
the examples the study scores, or the scores are biased by the selection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rotelab.engine.recipe import SCHEMES, Adaptive
from rotelab.errors import InvalidInputError

PERTURB = (0.8, 1.25)  # PBT's explore step (Jaderberg et al. 2017)
_PBT_STREAM = 0x9B7  # keeps PBT's draws apart from the other seeded streams


# ══ PBT: exploit and explore ═══════════════════════════════════════════════════════════
def pbt_pairs(score: np.ndarray, loss: np.ndarray, *, population: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Who copies whom: ``(src, dst)`` member indices, each (n,).

    Members compete within consecutive groups of ``population`` (a study puts one fold's
    members in a group, so no member is ranked against another fold's). In each group the
    members are ranked by ``score`` (K,) (higher = better; ties broken by lower ``loss``);
    each of the bottom ``max(1, population // 4)`` copies a member drawn from the top as many.
    A group of one has nobody to copy.
    """
    k = len(score)
    n = max(1, population // 4) if population >= 2 else 0
    src, dst = [], []
    for start in range(0, k, population):
        group = np.arange(start, start + population)
        order = group[np.lexsort((loss[group], -score[group]))]  # best first
        if n:
            dst += order[-n:].tolist()
            src += rng.choice(order[:n], size=n).tolist()
    return np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)


def perturb(values: np.ndarray, rng: np.random.Generator, *, low: float, high: float, log: bool,
            resample: float) -> np.ndarray:
    """PBT's explore step on the copied strengths (n,): ×0.8 or ×1.25 (even odds), or with
    probability ``resample`` a fresh draw from [low, high] (log-uniform when ``log``); clipped."""
    factor = rng.choice(PERTURB, size=len(values))
    fresh = rng.random(len(values)) < resample
    u = rng.random(len(values))
    draw = np.exp(np.log(low) + u * (np.log(high) - np.log(low))) if log and low > 0 else low + u * (high - low)
    return np.clip(np.where(fresh, draw, values * factor), low, high)


@torch.no_grad()
def exploit(net, opt: torch.optim.Optimizer, src: np.ndarray, dst: np.ndarray,
            extra: list[torch.Tensor] = ()) -> None:
    """Member ``dst[i]`` becomes a copy of member ``src[i]``: its parameters, its optimizer state
    (AdamW ``exp_avg``, ``exp_avg_sq``, ``step``; SGD's momentum) and each (K, ...) tensor in
    ``extra`` (e.g. AWD's λ̄). Every other member is left untouched, bit for bit.

    Stacked members: an index-copy along the member axis of each (K, ...) tensor (a stacked
    parameter's ``step`` is one count for all K members, which step together: equal already).
    The loop: each parameter and its state tensors, member by member.
    """
    if len(dst) == 0:
        return
    if getattr(net, "vectorized", True):
        for p in net.params.values():
            s, d = torch.as_tensor(src, device=p.device), torch.as_tensor(dst, device=p.device)
            p[d] = p[s]
            for v in opt.state.get(p, {}).values():
                if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == net.k:
                    v[d] = v[s]
    else:
        for i, j in zip(src.tolist(), dst.tolist()):
            for ps, pd in zip(net.modules[i].parameters(), net.modules[j].parameters()):
                pd.copy_(ps)
                state = opt.state.get(ps)
                if state is not None:
                    opt.state[pd] = {key: v.clone() if torch.is_tensor(v) else v for key, v in state.items()}
    for t in extra:
        t[torch.as_tensor(dst, device=t.device)] = t[torch.as_tensor(src, device=t.device)]


# ══ gap feedback ═══════════════════════════════════════════════════════════════════════
@dataclass(frozen=True)
class GapController:
    """Raise a strength when the train − validation gap widens past its target, lower it when
    the model underfits (gap below target − band): multiplicative steps of ``rate``, kept in
    [floor, high] with floor = low, or 1% of high when low is 0 (a product never leaves 0).

    Pure: ``step(strength (K,), gap (K,)) -> strength (K,)``; ``targets`` (K,) or one value.
    """

    targets: np.ndarray | float
    rate: float = 1.25
    band: float = 0.02
    low: float = 0.0
    high: float = 1.0

    def step(self, strength: np.ndarray, gap: np.ndarray) -> np.ndarray:
        target = np.asarray(self.targets, dtype=np.float64)
        s = np.asarray(strength, dtype=np.float64)
        g = np.asarray(gap, dtype=np.float64)
        floor = self.low if self.low > 0 else 0.01 * self.high
        s = np.maximum(s, floor)
        out = np.where(g > target + self.band, s * self.rate, np.where(g < target - self.band, s / self.rate, s))
        return np.clip(np.where(np.isfinite(g), out, s), floor, self.high)


# ══ the schedule a member followed ═════════════════════════════════════════════════════
def lineage(strength: np.ndarray, parent: np.ndarray, member: int) -> np.ndarray:
    """The strength schedule (E,) that produced member ``member``'s final weights: its own
    values back to the last epoch it copied another member, that member's before, and so on.

    ``strength`` (K, E): what each member trained with in each epoch; ``parent`` (K, E): the
    member whose weights it held at the start of that epoch (itself when it copied none).
    """
    e = strength.shape[1]
    out = np.empty(e, dtype=strength.dtype)
    cur = int(member)
    for t in range(e - 1, -1, -1):
        out[t] = strength[cur, t]
        cur = int(parent[cur, t])
    return out


# ══ the controller inside train_job ════════════════════════════════════════════════════
def check_adaptive(a: Adaptive, k: int, epochs: int) -> None:
    """Refuse an Adaptive the job cannot run: unknown scheme, impossible period or population,
    targets or a schedule of the wrong shape, bounds the wrong way round."""
    from rotelab.engine.recipe import MEMBER_KNOBS

    if a.scheme not in SCHEMES:
        raise InvalidInputError(f"unknown adaptive scheme {a.scheme!r}: expected one of {', '.join(SCHEMES)}")
    if a.knob not in MEMBER_KNOBS:
        raise InvalidInputError(f"adaptive knob {a.knob!r} is not a per-member strength: use {', '.join(MEMBER_KNOBS)}")
    if a.scheme != "replay" and not 1 <= a.period < epochs:
        raise InvalidInputError(f"adaptive period {a.period} is impossible for {epochs} epochs: it must be in "
                                f"[1, {epochs - 1}] so that at least one decision falls inside the run")
    if a.scheme == "pbt" and (a.population < 2 or k % a.population):
        raise InvalidInputError(f"pbt population {a.population} must be >= 2 and divide the job's {k} members")
    if not a.low <= a.high:
        raise InvalidInputError(f"adaptive bounds low {a.low} > high {a.high}")
    if a.scheme == "gap" and len(a.targets) not in (1, k):
        raise InvalidInputError(f"gap feedback needs 1 or {k} targets, got {len(a.targets)}")
    if a.scheme == "replay" and (len(a.schedule) != k or any(len(r) != epochs for r in a.schedule)):
        raise InvalidInputError(f"a replayed schedule must be ({k} members, {epochs} epochs)")


class Controller:
    """Runs one :class:`Adaptive` over a job; ``values`` (K,) is the knob's per-member tensor the
    step reads (changed in place)."""

    def __init__(self, a: Adaptive, values: torch.Tensor, epochs: int, job_seed: int):
        k = len(values)
        self.a, self.values = a, values
        self.strength = np.zeros((k, epochs), dtype=np.float32)
        self.parent = np.tile(np.arange(k), (epochs, 1)).T.copy()
        self.pending = np.arange(k)
        self.rng = np.random.default_rng([int(job_seed), _PBT_STREAM])
        self.gap = GapController(np.asarray(a.targets), rate=a.rate, band=a.band, low=a.low, high=a.high) \
            if a.scheme == "gap" else None

    def due(self, epoch: int, epochs: int) -> bool:
        """Whether a decision follows ``epoch`` (1-based): it needs that epoch's metrics."""
        return self.a.scheme != "replay" and epoch % self.a.period == 0 and epoch < epochs

    def before_epoch(self, epoch: int) -> None:
        if self.a.scheme == "replay":
            self.values.copy_(torch.as_tensor([r[epoch - 1] for r in self.a.schedule], dtype=self.values.dtype))
        self.strength[:, epoch - 1] = self.values.cpu().numpy()
        self.parent[:, epoch - 1] = self.pending
        self.pending = np.arange(len(self.pending))

    def after_epoch(self, net, opt, metrics: dict[str, np.ndarray], extra: list[torch.Tensor] = ()) -> None:
        """One decision from the epoch's per-member ``metrics`` (train_acc, val_acc, val_loss (K,))."""
        values = self.values.cpu().numpy().astype(np.float64)
        if self.gap is not None:
            values = self.gap.step(values, metrics["train_acc"] - metrics["val_acc"])
        else:
            score = np.nan_to_num(metrics["val_acc"], nan=-np.inf)
            src, dst = pbt_pairs(score, np.nan_to_num(metrics["val_loss"], nan=np.inf),
                                 population=self.a.population, rng=self.rng)
            exploit(net, opt, src, dst, extra)
            values[dst] = perturb(values[src], self.rng, low=self.a.low, high=self.a.high, log=self.a.log,
                                  resample=self.a.resample)
            self.pending[dst] = src
        self.values.copy_(torch.as_tensor(values, dtype=self.values.dtype))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"strength": self.strength, "parent": self.parent}


__all__ = ["Controller", "GapController", "PERTURB", "check_adaptive", "exploit", "lineage", "pbt_pairs", "perturb"]
