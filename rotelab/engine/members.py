"""K models trained as one: stacked weights under ``torch.func.vmap``, or a plain loop.

Both classes expose the same small interface, so one training loop serves both:
``__call__(x (K, B, ...)) -> logits (K, B, C)``, ``forward_shared(x (B, ...))``,
``parameters()``, ``train(mode)``, ``snapshot()`` / ``restore(snapshot, which)``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from rotelab.models.zoo import Residual


def init_members(factory: Callable[[], nn.Module], seeds: Sequence[int]) -> list[nn.Module]:
    """One freshly initialised module per seed; member k's weights depend only on seeds[k]."""
    modules = []
    for s in seeds:
        torch.manual_seed(int(s))
        modules.append(factory())
    return modules


def unsupported_reason(module: nn.Module) -> str | None:
    """Why ``module`` cannot be stacked under vmap, known before running it (None if nothing is known).

    Other failures show when a step is tried (``make_members``), and the reason names the layer.
    """
    for name, m in module.named_modules():
        where = f"layer '{name}' ({type(m).__name__})"
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.momentum is None:
            return (f"{where} keeps a cumulative average of its statistics (momentum=None), which reads the "
                    "batch count as a Python number; give it a momentum (e.g. 0.1) to train the members at once")
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in m.parameters(recurse=False)):
            return f"{where} has uninitialized (lazy) parameters; build it with explicit sizes to stack it"
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
        ctx.bias_dtype = None if b is None else b.dtype
        if w.shape[1] < 16:
            yt = torch.bmm(w, x.transpose(1, 2)) if b is None else torch.baddbmm(b.unsqueeze(2), w, x.transpose(1, 2))
            return yt.transpose(1, 2)
        wt = w.transpose(1, 2)
        return torch.bmm(x, wt) if b is None else torch.baddbmm(b.unsqueeze(1), x, wt)

    @staticmethod
    def backward(ctx, g):
        # Under autocast the forward ran in bf16/fp16 (g comes in that type) while x and w may be
        # fp32: compute in g's type, hand each gradient back in its input's type (fp32 master
        # weights get fp32 gradients). Without autocast every cast here is a no-op.
        x, w = ctx.saved_tensors
        gx = torch.bmm(g, w.to(g.dtype)).to(x.dtype) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(g.transpose(1, 2), x.to(g.dtype)).to(w.dtype) if ctx.needs_input_grad[1] else None
        gb = g.sum(1, dtype=ctx.bias_dtype) if ctx.bias_dtype is not None and ctx.needs_input_grad[2] else None
        return gx, gw, gb


_MAX_POOLS = {nn.MaxPool1d: F.max_pool1d, nn.MaxPool2d: F.max_pool2d}
_AVG_POOLS = {nn.AdaptiveAvgPool1d: F.adaptive_avg_pool1d, nn.AdaptiveAvgPool2d: F.adaptive_avg_pool2d}


def fast_plan(module: nn.Module) -> list[tuple] | None:
    """The layers of a plain ``nn.Sequential`` as ops the stacked fast path runs, else None.

    Plain: ``Flatten(1, -1)``, ``Linear``, ``ReLU``, ``Dropout``, ``BatchNorm1d`` (with a
    momentum), nested ``nn.Sequential``s, and before the first Flatten also ``Conv1d``/``Conv2d``
    (groups 1, zero padding), ``BatchNorm2d``, ``MaxPool1d``/``MaxPool2d``,
    ``AdaptiveAvgPool1d``/``AdaptiveAvgPool2d`` and ``rotelab.models.zoo.Residual`` blocks whose
    branches are plain in the same sense; what ``rotelab.models`` builds for mlp, cnn and resnet.
    Anything else runs under vmap.
    """
    plan = _plan(module, "", flat=False, grouped=False)
    return None if plan is None else plan[0]


def _plan(module: nn.Module, prefix: str, *, flat: bool, grouped: bool) -> tuple[list[tuple], bool, bool] | None:
    """Ops of a Sequential whose parameters are named ``prefix + name``, and the state after it:
    flat (after a Flatten), grouped (after a convolution, until a Flatten: a Linear there would
    act on a feature map)."""
    if type(module) is not nn.Sequential:
        return None
    plan: list[tuple] = []
    for name, m in module.named_children():
        t, key = type(m), f"{prefix}{name}."
        if t is nn.Sequential:
            sub = _plan(m, key, flat=flat, grouped=grouped)
            if sub is None:
                return None
            plan, flat, grouped = [*plan, *sub[0]], sub[1], sub[2]
        elif t is nn.Flatten and m.start_dim == 1 and m.end_dim == -1:
            plan.append(("flatten",))
            flat, grouped = True, False
        elif t is nn.Linear and not grouped:
            plan.append(("linear", f"{key}weight", f"{key}bias" if m.bias is not None else None))
        elif t in (nn.Conv1d, nn.Conv2d) and not flat and m.groups == 1 and m.padding_mode == "zeros":
            fn = F.conv1d if t is nn.Conv1d else F.conv2d
            plan.append(("conv", fn, f"{key}weight", f"{key}bias" if m.bias is not None else None,
                         m.stride, m.padding, m.dilation))
            grouped = True
        elif t in (nn.BatchNorm1d, nn.BatchNorm2d) and m.momentum is not None and not (flat and t is nn.BatchNorm2d):
            dims = (2, 3) if t is nn.BatchNorm1d else (4,)  # of (B, K·C, ...), as the module checks (B, C, ...)
            plan.append(("norm", key, m.affine, m.track_running_stats, m.momentum, m.eps, dims))
        elif t in _MAX_POOLS and not flat and not m.return_indices:
            op = ("pool", _MAX_POOLS[t], m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
            # ReLU then max-pool = max-pool then ReLU (max commutes with a monotone map; the
            # gradient reaches the same element, or nothing when the max is <= 0), and after
            # the pool the ReLU and its backward touch a quarter of the elements
            plan[-1:] = [op, plan[-1]] if plan and plan[-1] == ("relu",) else [*plan[-1:], op]
        elif t in _AVG_POOLS and not flat:  # an average does not commute with ReLU: kept in place
            plan.append(("pool", _AVG_POOLS[t], m.output_size))
        elif t is Residual and not flat:
            body = _plan(m.body, f"{key}body.", flat=False, grouped=grouped)
            short = _plan(m.shortcut, f"{key}shortcut.", flat=False, grouped=grouped)
            if body is None or short is None or body[1] or short[1]:  # no Flatten inside a block
                return None
            plan.append(("residual", body[0], short[0]))
            grouped = grouped or body[2] or short[2]
        elif t is nn.ReLU:
            plan.append(("relu",))
        elif t is nn.Dropout:
            plan.append(("dropout", m.p))
        else:
            return None
    return plan, flat, grouped


class StackedMembers:
    """K copies of one architecture as stacked (K, ...) tensors, run with vmap (batched matmul,
    grouped conv). Exactly K independent models: the loss is a sum over members, so no
    gradient crosses members, and Adam/SGD are elementwise. Buffers (BatchNorm running
    statistics) are stacked too, (K, ...), and each member's are updated from its own batch.

    Plain ``nn.Sequential`` MLPs and CNNs skip vmap for a hand-written path (``_fast``),
    equal to the vmap path within float tolerance (tested).
    """

    vectorized = True

    def __init__(self, modules: list[nn.Module], device: torch.device):
        params, buffers = stack_module_state(modules)
        self.params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
        # updated in place: by BatchNorm under vmap (a batched in-place update of a batched
        # tensor), or by ``_norm`` through flat views
        self.buffers = {k: v.detach().to(device) for k, v in buffers.items()}
        self.base = copy.deepcopy(modules[0]).to("meta")
        self.k = len(modules)

        def one(p, b, x):
            return functional_call(self.base, (p, b), (x,))

        self._each = vmap(one, in_dims=(0, 0, 0), randomness="different")
        self._shared = vmap(one, in_dims=(0, 0, None), randomness="different")
        self.plan = fast_plan(modules[0])
        self._ops = {"conv": self._conv, "norm": self._norm, "pool": self._pool, "flatten": self._flatten,
                     "linear": self._linear, "relu": self._relu, "dropout": self._dropout,
                     "residual": self._residual}
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
        h is (K, B, ...) per member ("stacked"), (B, ...) when still shared, or (B, K·C, ...)
        ("grouped"); each op takes and returns (h, layout).
        """
        h, layout = self._run(self.plan, x, "shared" if shared else "stacked")
        if layout == "shared":  # no layer with weights: every member computes the same function of x
            return h.expand(self.k, *h.shape)
        return self._stacked(h, layout)

    def _run(self, plan: list[tuple], h: torch.Tensor, layout: str) -> tuple[torch.Tensor, str]:
        for op in plan:
            h, layout = self._ops[op[0]](op, h, layout)
        return h, layout

    def _grouped(self, h: torch.Tensor, layout: str) -> torch.Tensor:
        """h in any layout -> (B, K·C, ...), member k's channels at k·C ... k·C + C - 1."""
        if layout == "stacked":  # (K, B, C, *s)
            return h.transpose(0, 1).flatten(1, 2)
        if layout == "shared":  # a copy per member: the grouped convolution on it beats one
            return h.repeat(1, self.k, *[1] * (h.dim() - 2))  # ungrouped K·Cout-channel one 2x (mkldnn, CPU)
        return h

    def _stacked(self, h: torch.Tensor, layout: str) -> torch.Tensor:
        """h in any layout -> (K, B, C, ...) (a view where it can be)."""
        if layout == "grouped":
            return h.unflatten(1, (self.k, -1)).transpose(0, 1)
        if layout == "shared":
            return h.expand(self.k, *h.shape)
        return h

    def _conv(self, op: tuple, h: torch.Tensor, layout: str) -> tuple[torch.Tensor, str]:
        fn, w, b, stride, padding, dilation = op[1], self.params[op[2]], op[3], op[4], op[5], op[6]
        b = self.params[b].flatten() if b else None
        want = w.dim() - 3 + {"stacked": 3, "shared": 2, "grouped": 2}[layout]  # w: (K, out, in, *kernel)
        if h.dim() != want:  # e.g. unbatched-style input: leave the model to vmap (make_members)
            raise ValueError(f"fast path: convolution input has {h.dim()} dims, expected {want}")
        h = self._grouped(h, layout)
        if h.dim() == 4:
            h = h.contiguous(memory_format=torch.channels_last)
        return fn(h, w.flatten(0, 1), b, stride, padding, dilation, self.k), "grouped"

    def _norm(self, op: tuple, h: torch.Tensor, layout: str) -> tuple[torch.Tensor, str]:
        """BatchNorm of every member at once: a BatchNorm over the K·C channels of (B, K·C, ...),
        with member k's statistics, weight and bias at channels k·C ... k·C + C - 1.

        Why not vmap: this is one ``batch_norm`` kernel on the channels-last grouped map that the
        convolutions produce, instead of vmap's layout shuffles around it. The running statistics
        are updated in place through flat views of the stacked (K, C) buffers, as nn.BatchNorm does.
        """
        _, key, affine, track, momentum, eps, dims = op
        if layout != "grouped" and self._stacked(h, layout).dim() == 3:  # (K, B, F) features: to (B, K·F)
            h = self._stacked(h, layout).transpose(0, 1).flatten(1)
        else:
            h = self._grouped(h, layout)
        if h.dim() not in dims:
            raise ValueError(f"fast path: batch norm input has {h.dim()} dims, expected one of {dims}")
        w, b = (self.params[f"{key}weight"].flatten(), self.params[f"{key}bias"].flatten()) if affine else (None, None)
        mean = var = None
        if track:
            mean, var = self.buffers[f"{key}running_mean"].view(-1), self.buffers[f"{key}running_var"].view(-1)
            if self.base.training:
                self.buffers[f"{key}num_batches_tracked"].add_(1)
        return F.batch_norm(h, mean, var, w, b, self.base.training or not track, momentum, eps), "grouped"

    def _pool(self, op: tuple, h: torch.Tensor, layout: str) -> tuple[torch.Tensor, str]:
        if layout == "stacked":
            h, layout = self._grouped(h, layout), "grouped"
        return op[1](h, *op[2:]), layout

    def _flatten(self, op: tuple, h: torch.Tensor, layout: str) -> tuple[torch.Tensor, str]:
        if layout == "shared":
            return h.flatten(1), layout
        return self._stacked(h, layout).flatten(2), "stacked"  # (K, B, C·prod(s)), features in (C, *s) order

    def _linear(self, op: tuple, h: torch.Tensor, layout: str) -> tuple[torch.Tensor, str]:
        w, b = self.params[op[1]], (self.params[op[2]] if op[2] else None)
        if layout == "shared":  # one GEMM (B, in) x (in, K·out) instead of K small ones
            h = (h @ w.flatten(0, 1).T).view(len(h), self.k, -1).transpose(0, 1)
            return (h if b is None else h + b.unsqueeze(1)), "stacked"
        return StackedLinear.apply(self._stacked(h, layout), w, b), "stacked"

    def _relu(self, op: tuple, h: torch.Tensor, layout: str) -> tuple[torch.Tensor, str]:
        return torch.relu(h), layout

    def _dropout(self, op: tuple, h: torch.Tensor, layout: str) -> tuple[torch.Tensor, str]:
        if not self.base.training:
            return h, layout
        if layout == "shared":  # each member its own mask, as vmap's randomness="different"
            h, layout = h.expand(self.k, *h.shape), "stacked"
        if self.dropout_p is not None:  # per-member p (rotelab.engine.hyper)
            return member_dropout(h, self.dropout_p, layout), layout
        return F.dropout(h, op[1]), layout

    def _residual(self, op: tuple, h: torch.Tensor, layout: str) -> tuple[torch.Tensor, str]:
        """body(h) + shortcut(h); an empty shortcut is the identity."""
        a, la = self._run(op[1], h, layout)
        s, ls = self._run(op[2], h, layout)
        if la != ls:  # e.g. a grouped body and an identity shortcut on a stacked input
            return self._grouped(a, la) + self._grouped(s, ls), "grouped"
        return a + s, la

    def named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        return list(self.params.items())

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def snapshot(self) -> dict[str, torch.Tensor]:
        """Every member's weights and buffers (running statistics), stacked (K, ...), copied."""
        return {k: v.detach().clone() for k, v in {**self.params, **self.buffers}.items()}

    @torch.no_grad()
    def restore(self, snap: dict[str, torch.Tensor], which: torch.Tensor) -> None:
        """Copy snapshot weights and buffers into the members where ``which`` (K,) bool is True."""
        for k, v in {**self.params, **self.buffers}.items():
            m = which.view(-1, *([1] * (v.dim() - 1)))
            v.copy_(torch.where(m, snap[k], v))

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        """Each member's weights and buffers as a plain state dict (load it into one module)."""
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
    """Fallback for models vmap cannot stack (a BatchNorm with a cumulative average, spectral
    norm, in-place tricks): the same interface, one module after another."""

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
        """Each member's state dict, as :meth:`StackedMembers.state_dicts`."""
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
            reason = try_step(members, xs)  # some modules only fail when run: try one step on a tiny batch
            if reason is None:
                return members, None
        modules = init_members(factory, seeds)
    return LoopMembers(modules, device), reason


def try_step(members: StackedMembers, xs: torch.Tensor) -> str | None:
    """Run one forward and backward of ``members`` on xs (K, B, ...) in training mode; None if it
    ran, else why not, naming the innermost layer that was running. Leaves no trace: the buffers
    (BatchNorm statistics, batch counts) are put back and the gradients cleared."""
    saved = {k: v.clone() for k, v in members.buffers.items()}
    running: list[tuple[str, nn.Module]] = []  # layers entered and not yet left, outermost first
    hooks = []

    def enter(mod, args, name=""):
        running.append((name, mod))

    def leave(mod, args, out):  # returns None: the output stays as it is
        running.pop()

    for name, m in members.base.named_modules():
        if name:
            hooks += [m.register_forward_pre_hook(functools.partial(enter, name=name)), m.register_forward_hook(leave)]
    try:
        members(xs).sum().backward()
        return None
    except Exception as exc:  # noqa: BLE001 — any failure means: not vmappable
        where = f"layer '{running[-1][0]}' ({type(running[-1][1]).__name__}): " if running else ""
        return f"{where}{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        for h in hooks:
            h.remove()
        with torch.no_grad():
            for k, v in members.buffers.items():
                v.copy_(saved[k])
        for p in members.params.values():
            p.grad = None
