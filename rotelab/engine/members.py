"""K models trained as one: stacked weights under ``torch.func.vmap``, or a plain loop.

Both classes expose the same small interface, so one training loop serves both:
``__call__(x (K, B, ...)) -> logits (K, B, C)``, ``forward_shared(x (B, ...))``,
``parameters()``, ``train(mode)``, ``snapshot()`` / ``restore(snapshot, which)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def init_members(factory: Callable[[], nn.Module], seeds: Sequence[int]) -> list[nn.Module]:
    """One freshly initialised module per seed; member k's weights depend only on seeds[k]."""
    modules = []
    for s in seeds:
        torch.manual_seed(int(s))
        modules.append(factory())
    return modules


def unsupported_reason(module: nn.Module) -> str | None:
    """Why ``module`` cannot be stacked under vmap (None if it can)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            return f"{type(m).__name__} keeps running statistics"
    return None


class StackedMembers:
    """K copies of one architecture as stacked (K, ...) tensors, run with vmap (batched matmul,
    grouped conv). Exactly K independent models: the loss is a sum over members, so no
    gradient crosses members, and Adam/SGD are elementwise."""

    vectorized = True

    def __init__(self, modules: list[nn.Module], device: torch.device):
        params, buffers = stack_module_state(modules)
        self.params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
        self.buffers = {k: v.detach().to(device) for k, v in buffers.items()}
        self.base = copy.deepcopy(modules[0]).to("meta")
        self.k = len(modules)

        def one(p, b, x):
            return functional_call(self.base, (p, b), (x,))

        self._each = vmap(one, in_dims=(0, 0, 0), randomness="different")
        self._shared = vmap(one, in_dims=(0, 0, None), randomness="different")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._each(self.params, self.buffers, x)

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        """Every member on the same batch x (B, ...) -> (K, B, C), without copying x K times."""
        return self._shared(self.params, self.buffers, x)

    def named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        return list(self.params.items())

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.params.items()}

    @torch.no_grad()
    def restore(self, snap: dict[str, torch.Tensor], which: torch.Tensor) -> None:
        """Copy snapshot weights into the members where ``which`` (K,) bool is True."""
        for k, v in self.params.items():
            m = which.view(-1, *([1] * (v.dim() - 1)))
            v.copy_(torch.where(m, snap[k], v))

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        return [{k: v[i].detach().cpu() for k, v in {**self.params, **self.buffers}.items()} for i in range(self.k)]


class LoopMembers:
    """Fallback for models vmap cannot stack (BatchNorm statistics, in-place tricks):
    the same interface, one module after another."""

    vectorized = False

    def __init__(self, modules: list[nn.Module], device: torch.device):
        self.modules = [m.to(device) for m in modules]
        self.k = len(modules)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x[i]) for i, m in enumerate(self.modules)])

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.modules])

    def named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        return [(f"{i}.{n}", p) for i, m in enumerate(self.modules) for n, p in m.named_parameters()]

    def train(self, mode: bool = True) -> None:
        for m in self.modules:
            m.train(mode)

    def snapshot(self) -> list[dict[str, torch.Tensor]]:
        return [copy.deepcopy(m.state_dict()) for m in self.modules]

    @torch.no_grad()
    def restore(self, snap, which: torch.Tensor) -> None:
        for i, m in enumerate(self.modules):
            if bool(which[i]):
                m.load_state_dict(snap[i])

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        return [{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in self.modules]


def make_members(
    factory: Callable[[], nn.Module], seeds: Sequence[int], device: torch.device, sample: torch.Tensor
) -> tuple[StackedMembers | LoopMembers, str | None]:
    """Stack the members if vmap can run them (checked on ``sample`` (B, ...)), else loop.

    Returns the members and, for the fallback, the reason (to be said once to the user).
    """
    modules = init_members(factory, seeds)
    reason = unsupported_reason(modules[0])
    if reason is None:
        members = StackedMembers(modules, device)
        try:  # some modules only fail when run: try one step on a tiny batch
            out = members(sample[: min(2, len(sample))].unsqueeze(0).expand(members.k, *([-1] * sample.dim())))
            out.sum().backward()
            for p in members.params.values():
                p.grad = None
            return members, None
        except Exception as exc:  # noqa: BLE001 — any failure means: not vmappable
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        modules = init_members(factory, seeds)
    return LoopMembers(modules, device), reason
