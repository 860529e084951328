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


def fast_plan(module: nn.Module) -> list[tuple] | None:
    """The layers of a plain ``nn.Sequential`` as ops the stacked fast path runs, else None.

    Plain: ``Flatten(1, -1)``, ``Linear``, ``ReLU``, ``Dropout``, and before the first
    Flatten also ``Conv1d``/``Conv2d`` (groups 1, zero padding) and ``MaxPool1d``/``MaxPool2d``;
    what ``rotelab.models`` builds for mlp and cnn. Anything else runs under vmap.
    """
    if type(module) is not nn.Sequential:
        return None
    plan: list[tuple] = []
    flat, grouped = False, False  # after a Flatten; after a convolution (until a Flatten)
    for name, m in module.named_children():
        t = type(m)
        if t is nn.Flatten and m.start_dim == 1 and m.end_dim == -1:
            plan.append(("flatten",))
            flat, grouped = True, False
        elif t is nn.Linear and not grouped:
            plan.append(("linear", f"{name}.weight", f"{name}.bias" if m.bias is not None else None))
        elif t in (nn.Conv1d, nn.Conv2d) and not flat and m.groups == 1 and m.padding_mode == "zeros":
            fn = F.conv1d if t is nn.Conv1d else F.conv2d
            plan.append(("conv", fn, f"{name}.weight", f"{name}.bias" if m.bias is not None else None,
                         m.stride, m.padding, m.dilation))
            grouped = True
        elif t in (nn.MaxPool1d, nn.MaxPool2d) and not flat and not m.return_indices:
            fn = F.max_pool1d if t is nn.MaxPool1d else F.max_pool2d
            op = ("pool", fn, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
            # ReLU then max-pool = max-pool then ReLU (max commutes with a monotone map; the
            # gradient reaches the same element, or nothing when the max is <= 0), and after
            # the pool the ReLU and its backward touch a quarter of the elements
            plan[-1:] = [op, plan[-1]] if plan and plan[-1] == ("relu",) else [*plan[-1:], op]
        elif t is nn.ReLU:
            plan.append(("relu",))
        elif t is nn.Dropout:
            plan.append(("dropout", m.p))
        else:
            return None
    return plan


class StackedMembers:
    """K copies of one architecture as stacked (K, ...) tensors, run with vmap (batched matmul,
    grouped conv). Exactly K independent models: the loss is a sum over members, so no
    gradient crosses members, and Adam/SGD are elementwise.

    Plain ``nn.Sequential`` MLPs and CNNs skip vmap for a hand-written path (``_fast``),
    equal to the vmap path within float tolerance (tested).
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
        self.plan = fast_plan(modules[0])
        self.dropout_p: torch.Tensor | None = None  # (K,) per-member dropout p, see set_dropout

    def set_dropout(self, p: torch.Tensor) -> None:
        """Give member k dropout probability ``p[k]`` (p (K,), on the members' device) in place of
        the model's own; the forward reads ``p`` at every step, so changing its values in place
        changes the next step. Under vmap each ``nn.Dropout`` becomes a module that reads its p
        from a stacked buffer (vmap hands each member its own entry)."""
        self.dropout_p = p
        for name, m in list(self.base.named_modules()):
            if type(m) is nn.Dropout:
                parent, _, child = name.rpartition(".")
                setattr(self.base.get_submodule(parent) if parent else self.base, child, _MemberDropout())
                self.buffers[f"{name}.p"] = p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.plan is not None:
            return self._fast(x, shared=False)
        return self._each(self.params, self.buffers, x)

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        """Every member on the same batch x (B, ...) -> (K, B, C), without copying x K times."""
        if self.plan is not None:
            return self._fast(x, shared=True)
        return self._shared(self.params, self.buffers, x)

    def _fast(self, x: torch.Tensor, *, shared: bool) -> torch.Tensor:
        """The members' forward without vmap, for a ``fast_plan``: x (K, B, *fs), or (B, *fs)
        shared by every member -> logits (K, B, C). Same math as the vmap path (tested).

        Why: vmap runs a Linear as a batched matmul plus a separate broadcast add, and its
        backward copies every weight gradient out of a transposed layout; here a Linear is one
        ``baddbmm`` (``StackedLinear``). Convolutions run as one grouped convolution over
        (B, K·C, *spatial), as vmap does, but 2-D maps stay channels-last: the max-pool and
        ReLU then vectorize over the K·C channels (a digits cnn step: 3.5 vs 4.8 ms per member).
        h is (K, B, ...) per member ("stacked"), (B, ...) when still shared, or (B, K·C, ...).
        """
        k, h, layout = self.k, x, "shared" if shared else "stacked"
        for op in self.plan:
            kind = op[0]
            if kind == "conv":
                fn, w, b, stride, padding, dilation = op[1], self.params[op[2]], op[3], op[4], op[5], op[6]
                b = self.params[b].flatten() if b else None
                want = w.dim() - 3 + {"stacked": 3, "shared": 2, "grouped": 2}[layout]  # w: (K, out, in, *kernel)
                if h.dim() != want:  # e.g. unbatched-style input: leave the model to vmap (make_members)
                    raise ValueError(f"fast path: convolution input has {h.dim()} dims, expected {want}")
                if layout == "stacked":  # (K, B, C, *s) -> (B, K·C, *s)
                    h = h.transpose(0, 1).flatten(1, 2)
                elif layout == "shared":  # a copy per member: the grouped convolution below beats one
                    h = h.repeat(1, k, *[1] * (h.dim() - 2))  # ungrouped K·Cout-channel one 2x (mkldnn, CPU)
                if h.dim() == 4:
                    h = h.contiguous(memory_format=torch.channels_last)
                h = fn(h, w.flatten(0, 1), b, stride, padding, dilation, k)
                layout = "grouped"
            elif kind == "pool":
                h = op[1](h, *op[2:])
            elif kind == "flatten":
                if layout == "grouped":  # (B, K·C, *s) -> (K, B, C·prod(s)), features in (C, *s) order
                    h = h.unflatten(1, (k, -1)).transpose(0, 1).flatten(2)
                    layout = "stacked"
                else:
                    h = h.flatten(1 if layout == "shared" else 2)
            elif kind == "linear":
                w, b = self.params[op[1]], (self.params[op[2]] if op[2] else None)
                if layout == "shared":  # one GEMM (B, in) x (in, K·out) instead of K small ones
                    h = (h @ w.flatten(0, 1).T).view(len(h), k, -1).transpose(0, 1)
                    h = h if b is None else h + b.unsqueeze(1)
                else:
                    h = StackedLinear.apply(h, w, b)
                layout = "stacked"
            elif kind == "relu":
                h = torch.relu(h)
            elif self.base.training:  # dropout: each member its own mask, as vmap's randomness="different"
                if layout == "shared":
                    h, layout = h.expand(k, *h.shape), "stacked"
                h = F.dropout(h, op[1]) if self.dropout_p is None else member_dropout(h, self.dropout_p, layout)
        if layout == "shared":  # no layer with weights: every member computes the same function of x
            h = h.expand(k, *h.shape)
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


def member_dropout(h: torch.Tensor, p: torch.Tensor, layout: str) -> torch.Tensor:
    """Dropout with member k's own probability p[k]: h (K, B, ...) ("stacked") or (B, K·C, ...)
    ("grouped", after a convolution); kept units are scaled by 1 / (1 − p[k]) as ``F.dropout``."""
    if layout == "stacked":
        pk = p.view(-1, *[1] * (h.dim() - 1))
    else:
        pk = p.repeat_interleave(h.shape[1] // len(p)).view(1, -1, *[1] * (h.dim() - 2))
    return h * ((torch.rand_like(h) >= pk) / (1 - pk)).to(h.dtype)


class _MemberDropout(nn.Module):
    """``nn.Dropout`` whose p is a buffer: stacked (K,) it reaches each member under vmap."""

    def __init__(self):
        super().__init__()
        self.register_buffer("p", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return x * ((torch.rand_like(x) >= self.p) / (1 - self.p)).to(x.dtype)


class LoopMembers:
    """Fallback for models vmap cannot stack (BatchNorm statistics, in-place tricks):
    the same interface, one module after another."""

    vectorized = False

    def __init__(self, modules: list[nn.Module], device: torch.device):
        self.modules = [m.to(device) for m in modules]
        self.k = len(modules)
        self.dropout_p: torch.Tensor | None = None

    def set_dropout(self, p: torch.Tensor) -> None:
        """Member k's ``nn.Dropout`` layers use ``p[k]``, read before every training forward."""
        self.dropout_p = p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.dropout_p is not None:
            for m, p in zip(self.modules, self.dropout_p.tolist()):
                for d in m.modules():
                    if isinstance(d, nn.Dropout):
                        d.p = p
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
        xs = sample[: min(2, len(sample))].unsqueeze(0).expand(members.k, *([-1] * sample.dim()))
        for plan in (members.plan, None) if members.plan is not None else (None,):
            members.plan = plan  # the fast path first; vmap if the fast path cannot run this model
            try:  # some modules only fail when run: try one step on a tiny batch
                members(xs).sum().backward()
                for p in members.params.values():
                    p.grad = None
                return members, None
            except Exception as exc:  # noqa: BLE001 — any failure means: not vmappable
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        modules = init_members(factory, seeds)
    return LoopMembers(modules, device), reason
