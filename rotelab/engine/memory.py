"""How many members of a job fit in memory, and joining a job trained in parts.

A job whose members do not fit (a GPU's free memory, or ``ROTELAB_MEMORY_BUDGET`` bytes) is
trained in parts of fewer members by the executor and joined back into one result, stored
under the job's key as if it had run whole. Members are independent models, so the parts
give the same numbers as the whole job, as long as the recipe draws no shared random numbers
(dropout, augmentation and mixing draw from one stream for all the job's members).
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch

from rotelab.errors import InvalidInputError, RotelabError

BUDGET_ENV = "ROTELAB_MEMORY_BUDGET"  # e.g. "2G", "500M", "123456": bytes one job may use
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
#: Of a GPU's free memory at a job's start, the share a job plans to use (the rest: the allocator's slack).
GPU_SHARE = 0.85


class JobTooLarge(RotelabError):
    """The job's members do not fit; ``fit`` of them would (0: not even one). ``source``: where
    the budget came from (the environment variable, or the GPU's free memory)."""

    def __init__(self, *, k: int, fit: int, per_member: int, budget: int, source: str):
        self.k, self.fit, self.per_member, self.budget, self.source = k, fit, per_member, budget, source
        super().__init__(f"{k} members need about {_mib(k * per_member)} ({_mib(per_member)} each) but the budget "
                         f"is {_mib(budget)} ({source}); {fit} fit at a time")

    def advice(self) -> str:
        """What to change when not even one member fits."""
        more = f"a larger {BUDGET_ENV}" if self.source.startswith(BUDGET_ENV) else "a GPU with more free memory"
        return (f"one member needs about {_mib(self.per_member)} but the budget is {_mib(self.budget)} "
                f"({self.source}); use a smaller --batch-size or --width, or {more}")


def _mib(n: float) -> str:
    """Bytes as people read them: 12 bytes, 3.0 KiB, 0.3 MiB, 12 MiB, 3.4 GiB."""
    if n < 2**10:
        return f"{n:.0f} bytes"
    if n < 2**20 / 10:
        return f"{n / 2**10:.1f} KiB"
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n < 10 * 2**20 else f"{n / 2**20:.0f} MiB"


def budget_from_env() -> int | None:
    """``ROTELAB_MEMORY_BUDGET`` in bytes (None when unset); a value that is not a size is one
    clear error, raised by the studies before they open their folder."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if not text:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)I?B?", text.upper())
    if not m:
        raise InvalidInputError(f"{BUDGET_ENV}={text!r}: expected bytes such as 2G, 500M or 123456")
    n = int(float(m.group(1)) * _UNITS[m.group(2)])
    if n < 1:
        raise InvalidInputError(f"{BUDGET_ENV}={text!r}: a budget must be at least 1 byte; unset it for no limit")
    return n


def _budget(device: torch.device) -> tuple[int | None, str]:
    """(bytes a job may use, where that figure came from)."""
    env = budget_from_env()
    if env is not None:
        return env, f"{BUDGET_ENV}={os.environ[BUDGET_ENV].strip()}"
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(GPU_SHARE * free), f"{GPU_SHARE:.0%} of the GPU's free memory"
    return None, "no limit on the CPU"


def budget_bytes(device: torch.device) -> int | None:
    """Bytes a job may use: ``ROTELAB_MEMORY_BUDGET`` if set, else a GPU's free memory (less some
    slack), else None (the CPU: no limit; the operating system's swap is the user's to manage)."""
    return _budget(device)[0]


def member_bytes(net, sample: torch.Tensor, batch_size: int) -> int:
    """Bytes one member needs while training: its weights, gradients and two Adam states (4 copies
    of its parameters), and the activations autograd keeps for a batch of ``batch_size``,
    measured on a forward pass of two examples per member and scaled to the batch.
    ``sample``: (K, 2, *features)."""
    saved = [0]

    def pack(t: torch.Tensor):
        saved[0] += t.numel() * t.element_size()
        return t

    net.train(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(sample).sum()
    params = sum(p.numel() * p.element_size() for _, p in net.named_parameters())
    k, b = sample.shape[:2]
    return int(4 * params / net.k + saved[0] / (k * b) * batch_size)


def check_fits(net, sample: torch.Tensor, batch_size: int, device: torch.device) -> int | None:
    """Raise :class:`JobTooLarge` when the job's members need more than the budget; else the
    member-rows one evaluation chunk may hold in it (None: no budget, the engine's default)."""
    budget, source = _budget(device)
    if budget is None:
        return None
    per_member = member_bytes(net, sample, batch_size)
    if net.k * per_member > budget:
        raise JobTooLarge(k=net.k, fit=int(budget // max(per_member, 1)), per_member=per_member, budget=budget,
                          source=source)
    per_row = max(per_member / batch_size, 1.0)  # activations of one example in one member (an upper bound:
    return max(net.k, int((budget - net.k * per_member) // per_row))  # evaluation keeps none for backward)


def join_parts(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays of a job trained in parts (members in order), as one job's arrays."""
    first, joined = parts[0], {}
    for key, value in first.items():
        value = np.asarray(value)
        if key == "epoch":
            joined[key] = value
        elif key == "seconds":
            joined[key] = np.float64(sum(float(p[key]) for p in parts))
        elif key == "vectorized":
            joined[key] = np.bool_(all(bool(p[key]) for p in parts))
        elif value.ndim == 0:
            joined[key] = np.asarray(max(np.asarray(p[key]) for p in parts))
        else:  # per member: (K, ...)
            joined[key] = np.concatenate([np.asarray(p[key]) for p in parts])
    return joined


__all__ = ["BUDGET_ENV", "JobTooLarge", "budget_bytes", "budget_from_env", "check_fits", "join_parts", "member_bytes"]
