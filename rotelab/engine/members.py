"""K models trained as one: stacked weights under ``torch.func.vmap``, or a plain loop.

Both classes expose the same small interface, so one training loop serves both:
``__call__(x (K, B, ...)) -> logits (K, B, C)``, ``forward_shared(x (B, ...))``,
``parameters()``, ``train(mode)``, ``snapshot()`` / ``restore(snapshot, which)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
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


class StackedLinear(torch.autograd.Function):
    """y = x Wᵀ + b for K layers at once: x (K, B, in), W (K, out, in), b (K, out) or None.

    Why by hand: autograd differentiates ``baddbmm(b, x, Wᵀ)`` into a gradient for the
    transposed view Wᵀ, which is then copied into W's layout every step (~20% of a 64-member
    MLP step on CPU); gᵀx lands in W's layout directly. A narrow layer (out < 16, the logits)
    is computed as (W xᵀ)ᵀ: MKL is 2x faster with the narrow side as rows (K=64, B=100, 100→10:
    0.25 ms vs 0.56 ms), and the (K, C, B) memory layout is what ``train.log_softmax`` wants.
    """

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        if w.shape[1] < 16:
            yt = torch.bmm(w, x.transpose(1, 2)) if b is None else torch.baddbmm(b.unsqueeze(2), w, x.transpose(1, 2))
            return yt.transpose(1, 2)
        wt = w.transpose(1, 2)
        return torch.bmm(x, wt) if b is None else torch.baddbmm(b.unsqueeze(1), x, wt)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        gx = torch.bmm(g, w) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(g.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        gb = g.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


def mlp_plan(module: nn.Module) -> list[tuple] | None:
    """The layers of a plain MLP as ops the stacked fast path runs, or None for anything else.

    A plain MLP is an ``nn.Sequential`` of ``Flatten(1, -1)``, ``Linear``, ``ReLU`` and
    ``Dropout`` only (what ``rotelab.models.mlp`` builds); ops are ("flatten",),
    ("linear", weight key, bias key or None), ("relu",), ("dropout", p).
    """
    if type(module) is not nn.Sequential:
        return None
    plan: list[tuple] = []
    for name, m in module.named_children():
        if type(m) is nn.Flatten and m.start_dim == 1 and m.end_dim == -1:
            plan.append(("flatten",))
        elif type(m) is nn.Linear:
            plan.append(("linear", f"{name}.weight", f"{name}.bias" if m.bias is not None else None))
        elif type(m) is nn.ReLU:
            plan.append(("relu",))
        elif type(m) is nn.Dropout:
            plan.append(("dropout", m.p))
        else:
            return None
    return plan


class StackedMembers:
    """K copies of one architecture as stacked (K, ...) tensors, run with vmap (batched matmul,
    grouped conv). Exactly K independent models: the loss is a sum over members, so no
    gradient crosses members, and Adam/SGD are elementwise.

    Plain MLPs skip vmap for a hand-written path (see ``_mlp``): the same math as one
    ``baddbmm`` per layer, equal to the vmap path within float tolerance (tested).
    """

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
        self.plan = mlp_plan(modules[0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.plan is not None:
            return self._mlp(x, shared=False)
        return self._each(self.params, self.buffers, x)

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        """Every member on the same batch x (B, ...) -> (K, B, C), without copying x K times."""
        if self.plan is not None:
            return self._mlp(x, shared=True)
        return self._shared(self.params, self.buffers, x)

    def _mlp(self, x: torch.Tensor, *, shared: bool) -> torch.Tensor:
        """Stacked MLP forward without vmap: one ``baddbmm`` per layer (``StackedLinear``).
        Why: vmap runs each Linear as a batched matmul plus a separate broadcast add through its
        batching rules, and its backward copies every weight gradient out of a transposed layout.

        x (K, B, *fs), or (B, *fs) shared by every member -> logits (K, B, C).
        """
        h = x
        for op in self.plan:
            if op[0] == "flatten":
                h = h.flatten(1 if shared else 2)
            elif op[0] == "linear":
                w, b = self.params[op[1]], (self.params[op[2]] if op[2] else None)
                if shared:  # one GEMM (B, in) x (in, K*out) instead of K small ones
                    h = (h @ w.flatten(0, 1).T).view(len(h), self.k, -1).transpose(0, 1)
                    h = h if b is None else h + b.unsqueeze(1)
                    shared = False
                else:
                    h = StackedLinear.apply(h, w, b)
            elif op[0] == "relu":
                h = torch.relu(h)
            elif self.base.training:  # each member its own mask, as vmap's randomness="different"
                h = F.dropout(h.expand(self.k, *h.shape) if shared else h, op[1])
                shared = False
        if shared:  # no Linear at all: every member computes the same function of x
            h = h.expand(self.k, *h.shape)
        return h

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
