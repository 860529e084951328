"""Train the K members of a job at once and record what each does on every example.

Shapes: ``x`` (N, *feature_shape) holds every example a study looks at (training pool,
then test split); ``train_mask``/``val_mask`` (K, N) bool say which examples member k
trains on and validates on; ``test_mask`` (N,) marks the test split ("new data").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rotelab.engine import graph_step
from rotelab.engine.adaptive import Controller, check_adaptive
from rotelab.engine.allocator import reuse_freed_memory
from rotelab.engine.early_stop import EarlyStopping
from rotelab.engine.hyper import AdaptiveDecay, augment_some, decay_members, member_of, member_tensors, smooth_targets
from rotelab.engine.members import LoopMembers, StackedMembers, make_members
from rotelab.engine.memory import check_fits
from rotelab.engine.recipe import Recipe
from rotelab.engine.threads import cpu_threads, torch_threads
from rotelab.errors import InvalidInputError

# Per-epoch curves recorded for every member, each (K, n_recorded_epochs).
CURVES = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
# Final per-example outputs, each (K, N).
OUTPUTS = ("loss", "confidence", "margin", "pred", "correct")
# Extra outputs a caller may ask for: "probs", every class's probability (K, N, C) as float16.
EXTRA_OUTPUTS = ("probs",)


@dataclass(frozen=True)
class Members:
    """Who trains: one seed and one pair of masks per member."""

    seeds: np.ndarray  # (K,) int
    train_mask: np.ndarray  # (K, N) bool
    val_mask: np.ndarray  # (K, N) bool

    @property
    def k(self) -> int:
        return len(self.seeds)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _batch_plan(members: Members, rng: list[np.random.Generator], batch_size: int):
    """Each member's own shuffled pass over its training examples, padded to a common length.

    Returns idx (K, n_max) int64 and weight (K, n_max) float32; padding repeats the member's
    own examples with weight 0, so mixing partners never come from outside its subset. A member
    tops up its own last batch with its own draws, as it would alone; the whole batches it sits
    out (when others have more examples) are filled without drawing, so its random stream is
    the one it has alone, and the training loop leaves it untouched on those steps.
    """
    k = members.k
    own = [np.flatnonzero(members.train_mask[i]) for i in range(k)]
    n_max = _padded(max(len(o) for o in own), batch_size)
    idx = np.empty((k, n_max), dtype=np.int64)
    w = np.zeros((k, n_max), dtype=np.float32)
    for i, o in enumerate(own):
        perm = rng[i].permutation(o)
        idx[i, : len(o)] = perm
        w[i, : len(o)] = 1.0
        n_own = _padded(len(o), batch_size)
        if n_own > len(o):  # the member's own last batch, topped up as it would be alone
            idx[i, len(o) : n_own] = rng[i].choice(o, size=n_own - len(o))
        if n_max > n_own:  # steps it sits out: no draws
            idx[i, n_own:] = np.resize(perm, n_max - n_own)
    return idx, w


def _padded(n: int, batch_size: int) -> int:
    """Examples in a member's pass: whole batches, unless it has less than one batch."""
    return int(np.ceil(n / batch_size) * batch_size) if n > batch_size else n


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities over the last (class) axis of logits (K, B, C).

    Why the transposes: on CPU, ATen's log_softmax over a last axis narrower than one SIMD
    vector (16 floats with AVX-512) takes a scalar path; at K=64, B=100, C=10 forward+backward
    took 1.6 ms, vs 0.37 ms over axis 1 of (K, C, B), which vectorizes over the batch. From
    C = 16 on, the plain call is the faster one. Same math, equal within float rounding.
    """
    if logits.device.type == "cpu" and logits.shape[-1] < 16:
        return torch.log_softmax(logits.transpose(-1, -2), dim=-2).transpose(-1, -2)
    return torch.log_softmax(logits, dim=-1)


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] for idx (K, B): index_select on the flat index is ~4x faster on CPU than advanced
    indexing (a (64, 100) batch of (1, 40) rows: 48 µs vs 195 µs), with the same values."""
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])


def _weight_params(named: Sequence[tuple[str, torch.Tensor]], stacked: bool) -> list[torch.Tensor]:
    """Weight matrices and kernels (not biases): what L1/L2 act on."""
    min_dim = 3 if stacked else 2
    return [p for _, p in named if p.dim() >= min_dim]


# ══ per-member standardization ═════════════════════════════════════════════════════════
@dataclass(frozen=True, eq=False)
class Standardizer:
    """Each member's features scaled to mean 0, std 1 with statistics of its own training
    examples only, so nothing leaks from its validation or test examples (as a scikit-learn
    ``StandardScaler`` fitted inside each fold). A constant feature keeps scale 1."""

    mean: torch.Tensor  # (K, *feature_shape)
    scale: torch.Tensor  # (K, *feature_shape)

    @classmethod
    def fit(cls, x: torch.Tensor, train_mask: torch.Tensor) -> "Standardizer":
        w = train_mask.to(x.dtype)  # (K, N)
        n = w.sum(1).clamp(min=1).view(-1, *[1] * (x.dim() - 1))
        flat = x.flatten(1)  # (N, D)
        mean = (w @ flat).view(len(w), *x.shape[1:]) / n
        var = (w @ flat.square()).view(len(w), *x.shape[1:]) / n - mean.square()
        scale = var.clamp(min=0).sqrt()
        return cls(mean, torch.where(scale > 1e-12, scale, torch.ones_like(scale)))

    def __call__(self, xb: torch.Tensor) -> torch.Tensor:
        """xb (K, B, *fs) -> standardized per member; (B, *fs) shared -> (K, B, *fs)."""
        if xb.dim() == self.mean.dim():  # shared by every member
            xb = xb.unsqueeze(0)
        return (xb - self.mean.unsqueeze(1)) / self.scale.unsqueeze(1)


# ══ evaluation ═════════════════════════════════════════════════════════════════════════
@torch.no_grad()
def evaluate(
    members: StackedMembers | LoopMembers, x: torch.Tensor, y: torch.Tensor, *, chunk: int | None = None,
    outputs: Sequence[str] = OUTPUTS, standardizer: Standardizer | None = None, precision: str = "fp32",
    rows: int | None = None, y_score: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every member on every example, in eval mode: loss, confidence in the given label,
    logit-scaled confidence (margin), predicted label and correctness, each (K, N), and
    ``probs`` (K, N, C); only the ``outputs`` asked for (the per-epoch curves need loss and
    correctness alone). With ``y_score`` (N,), other labels (the clean ones under injected
    noise), ``score_loss`` and ``score_correct`` are the loss and correctness against them,
    from the same forward pass."""
    members.train(False)
    # On the CPU ~4k member-rows per chunk keeps activations in cache: 2^18 rows made each
    # elementwise pass stream 100 MB (K=64: MLP eval 0.29 s vs 0.54 s, digits cnn 1.3 s vs 4.4 s).
    # A GPU wants few, large launches instead: 2^18 member-rows per chunk.
    # ``rows``: what the memory budget allows (a convnet's activations at 2^18 rows can exceed a GPU).
    budget, rows = rows, min(rows or 1 << 62, 4096 if x.device.type == "cpu" else 1 << 18)
    chunk = chunk or max(32 if budget is None else 1, rows // max(members.k, 1))
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in outputs}
    for start in range(0, len(x), chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        sb = None if y_score is None else y_score[start : start + chunk]
        with _autocast(x.device, precision):
            logits = (members.forward_shared(xb) if standardizer is None else members(standardizer(xb))).float()
        logp = log_softmax(logits)  # (K, B, C)
        lp_y = logp.gather(-1, yb.expand(logits.shape[0], -1).unsqueeze(-1)).squeeze(-1)
        pred = logits.max(-1).indices  # = argmax (first of ties), 5x faster on CPU for few classes
        out = {"loss": lambda: -lp_y, "confidence": lp_y.exp, "pred": lambda: pred.to(torch.int16),
               "correct": lambda: pred == yb, "margin": lambda: lp_y - _log1m_p(logp, yb),
               "probs": lambda: logp.exp().to(torch.float16),
               "score_loss": lambda: -logp.gather(-1, sb.expand(logits.shape[0], -1).unsqueeze(-1)).squeeze(-1),
               "score_correct": lambda: pred == sb}
        for name in outputs:
            parts[name].append(out[name]())
    return {k: torch.cat(v, dim=1) for k, v in parts.items()}


def _autocast(device: torch.device, precision: str, *, cache: bool = True):
    """bf16 autocast for the forward pass (matrix products and convolutions in bf16; weights,
    gradients and optimizer state stay fp32, so no loss scaling is needed), or nothing.
    ``cache=False`` for a step that a CUDA graph records (cached casts would outlive it)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=cache)


def _log1m_p(logp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log(1 - p_y) = logsumexp over the other classes, computed without cancellation."""
    return torch.logsumexp(logp.scatter(-1, y.expand(logp.shape[0], -1).unsqueeze(-1), float("-inf")), dim=-1)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    m = mask.float()
    total = (values.float() * m).sum(1)
    n = m.sum(1)
    out = torch.where(n > 0, total / n.clamp(min=1), torch.full_like(total, float("nan")))
    return out.cpu().numpy()


# ══ training ═══════════════════════════════════════════════════════════════════════════
@dataclass(eq=False)
class _Run:
    """Everything one job's training loop touches, built once by ``_setup``."""

    net: StackedMembers | LoopMembers
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler | None
    decay: list[torch.Tensor]  # weights that L1 acts on
    augment: Callable | None
    mixer: Callable | None
    hooks: list[tuple[Callable, float]]  # techniques' on_batch hooks with their strengths
    standardizer: Standardizer | None
    rngs: list[np.random.Generator]  # each member's batch order
    xt: torch.Tensor  # (N, *fs)
    yt: torch.Tensor  # (N,) the labels trained on
    ys: torch.Tensor | None  # (N,) the labels validation and test curves are scored on, when not yt
    masks: dict[str, torch.Tensor]  # "train", "val", "test": (K, N) bool
    threads: int
    eval_rows: int | None  # member-rows an evaluation chunk may hold (the memory budget), None: the default
    hp: dict[str, torch.Tensor]  # per-member strengths (K,) by knob (engine.hyper); empty = the scalar path
    awd: AdaptiveDecay | None = None
    controller: Controller | None = None
    awd_lambda: list[np.ndarray] | None = None  # AWD's mean λ̄ (K,) per epoch
    by_member: tuple[Sequence, Sequence] = ((), ())  # (every parameter, the weights) as (tensor, member) pairs
    replay: graph_step.ReplayedStep | None = None  # the step from fixed buffers (a CUDA graph), else None
    eye: torch.Tensor | None = None  # (C, C) identity: one-hot targets without reading the device back


def train_job(
    factory: Callable[[], nn.Module],
    x: np.ndarray,
    y: np.ndarray,
    *,
    members: Members,
    test_mask: np.ndarray,
    recipe: Recipe,
    n_classes: int,
    kind: str = "vector",
    device: str | torch.device = "auto",
    threads: int | None = None,
    job_seed: int = 0,
    on_epoch: Callable[[int, int], None] | None = None,
    on_fallback: Callable[[str], None] | None = None,
    outputs: Sequence[str] = OUTPUTS,
    y_score: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Train ``members.k`` models of ``factory`` under ``recipe`` at once.

    ``y`` (N,) are the labels trained on. ``y_score`` (N,), when given (the clean labels under
    injected label noise), scores the validation and test curves instead; the train curve, early
    stopping, controllers and the per-example outputs keep ``y``, the labels a user would have.

    Returns numpy arrays: the curves in ``CURVES`` (K, E_rec) with ``epoch`` (E_rec,), the
    per-example ``outputs`` (K, N) (from ``OUTPUTS`` and ``EXTRA_OUTPUTS``), ``best_epoch`` and
    ``epochs_run`` (K,), and the scalars ``seconds``, ``vectorized`` and ``threads`` (the CPU
    threads it used; ``threads=None`` picks them from the free cores). With early stopping,
    the final outputs come from each member's best epoch (lowest validation loss), and every
    member needs validation examples. The global torch RNG and thread count are left as the
    caller had them.

    Per-member strengths (``recipe.member_values``) and a controller (``recipe.adaptive``, which
    decides on each member's validation examples) add ``strength`` and ``parent`` (K, E): the
    controlled strength each member trained with in each epoch, and whose weights it continued
    from (``rotelab.engine.adaptive``); adaptive weight decay adds ``awd_lambda`` (K, E), its
    mean λ̄ per epoch.
    """
    dev = resolve_device(device)
    _check_job(members, recipe)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch_threads(None), \
            (reuse_freed_memory() if dev.type == "cpu" else contextlib.nullcontext()):
        t0 = time.perf_counter()
        run = _setup(factory, x, y, members, test_mask, recipe, n_classes, kind, dev, threads, on_fallback)
        if y_score is not None and not np.array_equal(y_score, y):
            run.ys = torch.as_tensor(y_score, dtype=torch.int64, device=dev)
        if recipe.adaptive is not None:
            run.controller = Controller(recipe.adaptive, run.hp[recipe.adaptive.knob], recipe.epochs, job_seed)
        torch.manual_seed(job_seed)  # dropout, augmentation and mixing draws
        stopper, curves = _fit(run, members, recipe, n_classes, on_epoch)
        return _finish(run, recipe, stopper, curves, outputs, time.perf_counter() - t0)


def _check_job(members: Members, recipe: Recipe) -> None:
    """What the recipe needs of the members: validation examples to watch or rank on."""
    watch = "early stopping watches validation loss" if recipe.early_stop > 0 else None
    if recipe.adaptive is not None:
        check_adaptive(recipe.adaptive, members.k, recipe.epochs)
        if recipe.adaptive.scheme == "pbt" and recipe.early_stop > 0:
            raise InvalidInputError("pbt copies members' weights mid-run, which early stopping's saved best epochs "
                                    "would not follow; use one or the other")
        if recipe.adaptive.scheme != "replay":
            watch = f"adaptive {recipe.adaptive.scheme} decides on validation accuracy"
    if watch is not None:
        empty = np.flatnonzero(~np.asarray(members.val_mask, dtype=bool).any(1))
        if len(empty):
            raise InvalidInputError(
                f"{watch}, but member {int(empty[0])} of this job has no validation examples; give every "
                f"member a validation set, or turn it off")


def _setup(factory, x, y, members: Members, test_mask, recipe: Recipe, n_classes: int, kind: str,
           dev: torch.device, threads: int | None, on_fallback) -> _Run:
    """Tensors on the device, the stacked members, optimizer, schedule and techniques."""
    want = threads or torch.get_num_threads()
    if dev.type == "cpu":  # setup is a few small kernels: one thread until the job knows its size
        torch.set_num_threads(1)
    xt = torch.as_tensor(x, dtype=torch.float32, device=dev)
    yt = torch.as_tensor(y, dtype=torch.int64, device=dev)
    masks = {"train": torch.as_tensor(members.train_mask, device=dev),
             "val": torch.as_tensor(members.val_mask, device=dev),
             "test": torch.as_tensor(np.asarray(test_mask, dtype=bool), device=dev).expand(members.k, -1)}
    standardizer = Standardizer.fit(xt, masks["train"]) if recipe.standardize else None
    sample = xt[:2] if standardizer is None else standardizer(xt[:2])[0]
    hp = member_tensors(recipe, members.k, dev)
    net, reason = make_members(factory, members.seeds, dev, sample)
    if reason is not None and on_fallback is not None:
        on_fallback(reason)
    eval_rows = check_fits(net, sample[:2].unsqueeze(0).expand(net.k, *[-1] * sample.dim()), recipe.batch_size, dev)
    if "dropout" in hp:
        net.set_dropout(hp["dropout"])
    used = torch.get_num_threads()
    if dev.type == "cpu":  # ~6 FLOPs per weight and example (forward + backward): enough to size a step
        flops = 6 * recipe.batch_size * sum(p.numel() for _, p in net.named_parameters())
        used = threads if threads else cpu_threads(flops, want=want)
        torch.set_num_threads(used)
    replayed = graph_step.wanted(dev) and _graph_reason(net, recipe, hp) is None
    opt, sched, decay = _optimizer(net, recipe, members, member_l2="l2" in hp,
                                   lr_tensor=dev if replayed else None)
    augment = mixer = None
    if recipe.augment:
        from rotelab.techniques.augment import build_augment

        augment = build_augment(recipe.augment, kind=kind, feature_shape=tuple(x.shape[1:]))
    if recipe.mixup or recipe.cutmix or "mixup" in hp:
        from rotelab.techniques.mixing import build_mixer

        mixer = build_mixer(mixup=recipe.mixup or float("mixup" in hp), cutmix=recipe.cutmix, kind=kind)
    hooks = []
    if recipe.batch_techniques:
        from rotelab.techniques import TECHNIQUES

        hooks = [(TECHNIQUES[name].on_batch, strength) for name, strength in recipe.batch_techniques]
    rngs = [np.random.Generator(np.random.PCG64([int(s), 0xB47C4])) for s in members.seeds]
    run = _Run(net, opt, None if replayed else sched, decay, augment, mixer, hooks, standardizer, rngs, xt, yt,
               None, masks, int(used), eval_rows, hp, eye=torch.eye(n_classes, device=dev))
    if replayed:
        run.replay = _replayed_step(run, recipe, n_classes, members, sched)
    if hp:
        ids, named = {id(p) for p in decay}, net.named_parameters()
        run.by_member = (member_of(named, net.vectorized),
                         member_of([(n, p) for n, p in named if id(p) in ids], net.vectorized))
    if "awd" in hp:
        run.awd, run.awd_lambda = AdaptiveDecay(members.k, dev), []
    return run


def _graph_reason(net, recipe: Recipe, hp: dict) -> str | None:
    """Why this job's step cannot be replayed from a CUDA graph (``graph_step``), None if it can."""
    host_side = [name for name, on in (
        ("augmentation", bool(recipe.augment)), ("mixing", bool(recipe.mixup or recipe.cutmix)),
        ("batch hooks", bool(recipe.batch_techniques)), ("per-member strengths", bool(hp)),
        ("a controller", recipe.adaptive is not None)) if on]
    return graph_step.unsupported(vectorized=net.vectorized, optimizer=recipe.optimizer, host_side=host_side)


def _replayed_step(run: _Run, recipe: Recipe, n_classes: int, members: Members, sched) -> graph_step.ReplayedStep:
    """The job's step from fixed (K, B) buffers with the optimizer's tensor learning rate; the
    cosine schedule, if any, runs on a stand-in and fills that tensor after each step."""
    return graph_step.ReplayedStep(
        lambda bi, bw: _step(run, recipe, n_classes, bi, bw), lr=run.opt.param_groups[0]["lr"],
        schedule=None if sched is None else graph_step.stand_in_schedule(recipe.lr, sched.T_max),
        batch_shape=(members.k, min(recipe.batch_size, int(members.train_mask.sum(1).max()))),
        device=run.xt.device, capture=run.xt.device.type == "cuda")


def _optimizer(net, recipe: Recipe, members: Members, *, member_l2: bool = False,
               lr_tensor: torch.device | None = None):
    """AdamW or SGD over the stacked parameters (decay on weights only), and the schedule.
    With per-member weight decay (``member_l2``) the optimizer decays nothing: the step does.
    ``lr_tensor``: AdamW reads its learning rate from a tensor on that device, capturable on
    CUDA (the replayed step, ``graph_step``)."""
    named = net.named_parameters()
    decay = _weight_params(named, net.vectorized)
    decay_ids = {id(p) for p in decay}
    rest = [p for _, p in named if id(p) not in decay_ids]
    groups = [{"params": decay, "weight_decay": recipe.l2}, {"params": rest, "weight_decay": 0.0}]
    if not recipe.l2 or member_l2:  # one group, one fused kernel launch per step instead of two: same update
        groups = [{"params": decay + rest, "weight_decay": 0.0}]
    # fused: one kernel per parameter tensor instead of ~10 passes over it (torch's CPU and
    # CUDA default is the per-tensor loop); the same update up to float rounding.
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, fused=True)
    elif lr_tensor is not None:
        lr = torch.tensor(recipe.lr, dtype=torch.float32, device=lr_tensor)
        opt = torch.optim.AdamW(groups, lr=lr, fused=True, capturable=lr_tensor.type == "cuda")
    else:
        opt = torch.optim.AdamW(groups, lr=recipe.lr, fused=True)
    steps_per_epoch = -(-int(members.train_mask.sum(1).max()) // recipe.batch_size)
    sched = None
    if recipe.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs * steps_per_epoch)
    return opt, sched, decay


def _fit(run: _Run, members: Members, recipe: Recipe, n_classes: int, on_epoch):
    """The epochs: a pass over each member's own shuffled examples, then the records."""
    stopper = EarlyStopping(run.net, patience=recipe.early_stop, epochs=recipe.epochs, device=run.xt.device) \
        if recipe.early_stop > 0 else None
    curves: dict[str, list[np.ndarray]] = {c: [] for c in CURVES}
    curves["epoch"] = []
    for epoch in range(1, recipe.epochs + 1):
        run.net.train(True)
        if run.controller is not None:
            run.controller.before_epoch(epoch)
        idx, w = _batch_plan(members, run.rngs, recipe.batch_size)
        idx_t, w_t = torch.from_numpy(idx).to(run.xt.device), torch.from_numpy(w).to(run.xt.device)
        for start in range(0, idx.shape[1], recipe.batch_size):
            idle = w[:, start : start + recipe.batch_size].sum(1) == 0  # members with no example this step
            kept = _freeze(run, idle) if idle.any() else None
            bi, bw = idx_t[:, start : start + recipe.batch_size], w_t[:, start : start + recipe.batch_size]
            if run.replay is not None:
                run.replay(bi, bw)
            else:
                _step(run, recipe, n_classes, bi, bw)
            if kept is not None:
                _thaw(run, idle, kept)
        due = run.controller is not None and run.controller.due(epoch, recipe.epochs)
        metrics = _record(run, recipe, epoch, curves, stopper, need=due)
        if run.awd is not None:
            run.awd_lambda.append(run.awd.epoch_mean().cpu().numpy())
        if due:
            run.controller.after_epoch(run.net, run.opt, metrics, [run.awd.lam_bar] if run.awd is not None else [])
        if on_epoch is not None:
            on_epoch(epoch, recipe.epochs)
        if stopper is not None and stopper.all_stopped:
            break
    return stopper, curves


def _freeze(run: _Run, idle: np.ndarray):
    """Before a step some members sit out: their weights, buffers and optimizer state, to put back."""
    state = {id(p): {k: v.clone() for k, v in st.items() if torch.is_tensor(v) and v.dim() > 0}
             for p, st in run.opt.state.items()}
    return run.net.snapshot(), state


@torch.no_grad()
def _thaw(run: _Run, idle: np.ndarray, kept) -> None:
    """After the step: the idle members as they were (Adam would still move them by its momentum)."""
    snap, state = kept
    which = torch.as_tensor(idle, device=run.xt.device)
    run.net.restore(snap, which)
    params = dict(run.net.named_parameters())
    for name, p in params.items():
        old, new = state.get(id(p), {}), run.opt.state.get(p, {})
        for key, before in old.items():
            if run.net.vectorized:  # stacked (K, ...) state: the idle members' rows
                new[key].copy_(torch.where(which.view(-1, *[1] * (before.dim() - 1)), before, new[key]))
            elif idle[int(name.split(".", 1)[0])]:  # the loop: member i's own tensors
                new[key].copy_(before)


def _step(run: _Run, recipe: Recipe, n_classes: int, bi: torch.Tensor, bw: torch.Tensor) -> None:
    """One optimizer step of every member on its own batch: indices bi, weights bw (K, B)."""
    xb, target = _batch(run, recipe, n_classes, bi)
    with _autocast(run.xt.device, recipe.precision, cache=run.replay is None):
        logits = run.net(xb)
    per_ex = -(target * log_softmax(logits.float())).sum(-1)  # (K, B)
    loss = ((per_ex * bw).sum(1) / bw.sum(1).clamp(min=1)).sum()  # a sum over members: no gradient crosses them
    if recipe.l1:
        loss = loss + recipe.l1 * sum(p.abs().sum() for p in run.decay)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if run.hp:
        _member_decay(run, recipe)
    run.opt.step()
    if run.sched is not None:
        run.sched.step()


def _batch(run: _Run, recipe: Recipe, n_classes: int, bi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The members' inputs (K, B, *fs) and targets (K, B, C) for batch indices bi (K, B):
    standardized, smoothed, augmented, mixed and hooked, with each member's own strengths."""
    hp = run.hp
    xb = _gather(run.xt, bi)  # (K, B, *fs)
    if run.standardizer is not None:
        xb = run.standardizer(xb)
    target = _gather(run.eye, _gather(run.yt, bi))  # (K, B, C) one-hot
    eps = recipe.label_smoothing
    if "label_smoothing" in hp:
        target = smooth_targets(target, hp["label_smoothing"])
    elif eps:
        target = target * (1 - eps) + eps / n_classes
    if run.augment is not None:
        augmented = run.augment(xb.flatten(0, 1)).view_as(xb)
        xb = augmented if "augment" not in hp else augment_some(xb, augmented, hp["augment"])
    if run.mixer is not None:
        xb, target = run.mixer(xb, target) if "mixup" not in hp else run.mixer(xb, target, hp["mixup"])
    for hook, strength in run.hooks:
        xb, target = hook(xb, target, strength)
    return xb, target


def _member_decay(run: _Run, recipe: Recipe) -> None:
    """Per-member weight decay between backward and the optimizer step: AWD's coupled λ̄·w on
    every parameter (from the loss gradient alone, so first), then decoupled l2 on weights."""
    if run.awd is not None:
        run.awd.step(run.by_member[0], run.hp["awd"])
    if "l2" in run.hp:
        decay_members(run.by_member[1], run.hp["l2"], run.opt.param_groups[0]["lr"], recipe.optimizer)


def _record(run: _Run, recipe: Recipe, epoch: int, curves: dict, stopper: EarlyStopping | None, *,
            need: bool = False) -> dict[str, np.ndarray] | None:
    """After an epoch: the curves (every ``eval_every`` epochs and the last) and early stopping.
    Returns the per-member train/val accuracy and loss (K,) when it evaluated (always if ``need``)."""
    record = recipe.eval_every > 0 and (epoch % recipe.eval_every == 0 or epoch == recipe.epochs)
    if not (record or need or stopper is not None):
        return None
    scored = record and run.ys is not None
    wanted = ("loss", "correct", "score_loss", "score_correct") if scored else ("loss", "correct")
    out = evaluate(run.net, run.xt, run.yt, outputs=wanted, standardizer=run.standardizer, precision=recipe.precision,
                   rows=run.eval_rows, y_score=run.ys if scored else None)
    metrics = {f"{name}_{m}": _masked_mean(out[key], mask) for name, mask in run.masks.items()
               for m, key in (("loss", "loss"), ("acc", "correct"))}
    if record:  # the curves score validation and test on ys; early stopping and controllers see what a user has
        shown = dict(metrics)
        if scored:
            shown.update({f"{name}_{m}": _masked_mean(out[key], run.masks[name]) for name in ("val", "test")
                          for m, key in (("loss", "score_loss"), ("acc", "score_correct"))})
        curves["epoch"].append(epoch)
        for name in CURVES:
            curves[name].append(shown[name])
    if stopper is not None:
        stopper.update(run.net, epoch, metrics["val_loss"])
    return metrics


def _finish(run: _Run, recipe: Recipe, stopper: EarlyStopping | None, curves: dict, outputs: Sequence[str],
            seconds: float) -> dict[str, np.ndarray]:
    """The final per-example outputs (from each member's best epoch under early stopping)."""
    k = run.net.k
    if stopper is not None:
        stopper.restore_best(run.net)
        best_epoch, stopped_at = stopper.best_epoch, stopper.stopped_at
    else:
        best_epoch = stopped_at = np.full(k, recipe.epochs, dtype=np.int64)
    final = evaluate(run.net, run.xt, run.yt, outputs=outputs, standardizer=run.standardizer,
                     precision=recipe.precision, rows=run.eval_rows)
    result = {name: final[name].cpu().numpy() for name in outputs}
    for name in CURVES:
        result[name] = np.stack(curves[name], axis=1) if curves["epoch"] else np.zeros((k, 0), dtype=np.float32)
    result["epoch"] = np.asarray(curves["epoch"], dtype=np.int64)
    result["best_epoch"] = best_epoch.copy()
    result["epochs_run"] = stopped_at.copy()
    if run.controller is not None:
        result.update(run.controller.arrays())
    if run.awd_lambda is not None:
        result["awd_lambda"] = np.stack(run.awd_lambda, axis=1) if run.awd_lambda else np.zeros((k, 0), np.float32)
    result["seconds"] = np.float64(seconds)
    result["vectorized"] = np.bool_(run.net.vectorized)
    result["cuda_graph"] = np.bool_(run.replay is not None and run.replay.captured)
    result["threads"] = np.int64(run.threads)
    return result


__all__ = ["CURVES", "EXTRA_OUTPUTS", "Members", "OUTPUTS", "Standardizer", "evaluate", "resolve_device",
           "train_job"]
