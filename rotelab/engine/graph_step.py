"""The training step replayed from one CUDA graph, for small models whose steps are launch-bound.

Why: on a GPU a step of a small model costs about the same whatever K is (an H200: ~2 ms for a
64-member MNIST-1D MLP, 1% of the card's FLOP/s; ``bench/results_cuda.md``), because its ~50
kernels are launched one by one from Python. A CUDA graph records the step once (forward,
backward, the fused AdamW update) and replays it with one launch. For that to be the same step:

- the step reads its batch (indices and weights, (K, B)) from fixed buffers, copied in first;
- the learning rate is a tensor that the capturable fused AdamW reads on the device, filled
  with the schedule's value after each step (the schedule itself runs on a stand-in optimizer
  on the host, so its values are torch's own, without reading the device back);
- nothing in the step reads a value back to Python (one-hot targets come from an identity
  matrix, not ``F.one_hot``, whose bounds check could).

Off unless ``ROTELAB_CUDA_GRAPH=1``: it has not yet run on a GPU (no GPU was lent to the
session that wrote it). ``bench/gpu_check.sh`` runs the CUDA tests with it on and measures
the step both ways. On the CPU the same path runs without the capture (the tests use it to
check that fixed buffers and a tensor learning rate train the same models).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch

ENV = "ROTELAB_CUDA_GRAPH"
#: Eager steps before the capture, on a side stream (as torch's CUDA-graph recipe does): they
#: create the optimizer's state and the libraries' workspaces, which a capture must not allocate.
WARMUP = 3


def wanted(device: torch.device) -> bool:
    """Whether jobs on ``device`` use the replayed step: CUDA and ``ROTELAB_CUDA_GRAPH=1``."""
    return device.type == "cuda" and os.environ.get(ENV, "0") == "1"


def unsupported(*, vectorized: bool, optimizer: str, host_side: list[str]) -> str | None:
    """Why a job's step cannot be one graph (None if it can): ``host_side`` names the job's
    techniques that decide on the host at every step (augmentation, mixing, batch hooks,
    per-member strengths, controllers)."""
    if not vectorized:
        return "the members run one after another (the per-model fallback)"
    if optimizer != "adam":
        return f"optimizer {optimizer!r}: only AdamW has a capturable update"
    if host_side:
        return f"{', '.join(host_side)} decide on the host at every step"
    return None


class ReplayedStep:
    """``step(bi, bw)`` run from fixed buffers: eagerly for the first ``WARMUP`` calls, then
    captured once and replayed. With ``capture=False`` (the CPU) every call runs eagerly, on
    the same buffers and tensor learning rate.

    ``lr`` is the tensor the optimizer reads; ``schedule`` (or None) runs on a stand-in
    optimizer, whose learning rate is copied into ``lr`` after every step.
    """

    def __init__(self, step: Callable[[torch.Tensor, torch.Tensor], None], *, lr: torch.Tensor,
                 schedule: torch.optim.lr_scheduler.LRScheduler | None, batch_shape: tuple[int, int],
                 device: torch.device, capture: bool):
        self.step, self.lr, self.schedule, self.capture = step, lr, schedule, capture
        self.bi = torch.zeros(batch_shape, dtype=torch.int64, device=device)  # (K, B) example indices
        self.bw = torch.zeros(batch_shape, dtype=torch.float32, device=device)  # (K, B) example weights
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side: torch.cuda.Stream | None = None  # the warm-up steps' stream, made once
        self.failed: str | None = None  # why the capture failed, when it did (the job goes on eagerly)
        self.calls = 0

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, bi: torch.Tensor, bw: torch.Tensor) -> None:
        self.bi.copy_(bi, non_blocking=True)
        self.bw.copy_(bw, non_blocking=True)
        if self.graph is None and self.capture and self.calls >= WARMUP:
            self._capture()
        if self.graph is not None:
            self.graph.replay()
        else:
            self._eager()
        self.calls += 1
        if self.schedule is not None:
            self.schedule.step()
            self.lr.fill_(self.schedule.optimizer.param_groups[0]["lr"])

    def _eager(self) -> None:
        if not self.capture:
            self.step(self.bi, self.bw)
            return
        if self.side is None:
            self.side = torch.cuda.Stream(self.bi.device)
        side = self.side
        side.wait_stream(torch.cuda.current_stream(self.bi.device))
        with torch.cuda.stream(side), warnings.catch_warnings():
            # the capturable AdamW warns that it runs uncaptured: these warm-up steps are meant to
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            self.step(self.bi, self.bw)
        torch.cuda.current_stream(self.bi.device).wait_stream(side)

    def _capture(self) -> None:
        """Record one step. The recorded kernels do not run while recording: the replay that
        follows is this call's step. A capture that fails leaves the job eager (``failed``)."""
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.step(self.bi, self.bw)
        except torch.OutOfMemoryError:
            raise  # the executor splits the job
        except Exception as exc:  # noqa: BLE001 — any failure to record: train eagerly instead
            torch.cuda.synchronize(self.bi.device)
            self.capture, self.failed = False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return
        self.graph = graph


def stand_in_schedule(lr: float, t_max: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine annealing over ``t_max`` steps on a parameterless stand-in optimizer: the same
    learning rates the eager path's ``CosineAnnealingLR`` gives, computed on the host."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max)
    opt.step()  # no gradient: changes nothing, and tells the schedule its optimizer has stepped
    return schedule


__all__ = ["ENV", "WARMUP", "ReplayedStep", "stand_in_schedule", "unsupported", "wanted"]
