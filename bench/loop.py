"""The baseline: K models trained one after another, the way a user writes it in plain PyTorch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rotelab.engine.recipe import Recipe

from bench.machine import timed


def train_loop(
    factory: Callable[[], nn.Module],
    x: np.ndarray,
    y: np.ndarray,
    *,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    seeds: Sequence[int],
    recipe: Recipe,
    device: torch.device,
) -> dict[str, list[float]]:
    """Train one ``nn.Module`` + ``AdamW`` per seed in turn; data on the device, no evaluation
    until each model's end. Returns per model, in order: ``acc`` (test accuracy) and the
    cumulative ``wall`` and ``cpu`` seconds after it, so the first K models are a K-model loop.

    The recipe is the engine's (Adam, no weight decay, cosine schedule stepped per batch,
    mean cross-entropy) and so are the seeds: model k starts from the weights ``seeds[k]``
    gives and sees the same shuffled batches as engine member k (a user would call
    ``torch.randperm``; the cost is the same), so the two columns train the same models.
    """
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.int64, device=device)
    test = torch.as_tensor(test_idx, device=device)
    b, n = recipe.batch_size, len(train_idx)
    steps = -(-n // b)
    pad = steps * b - n if n > b else 0  # the engine pads its last batch with weight-0 draws
    out: dict[str, list[float]] = {"acc": [], "wall": [], "cpu": []}
    wall = cpu = 0.0
    for seed in seeds:
        with timed(device) as t:
            torch.manual_seed(int(seed))
            model = factory().to(device)
            opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.0)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs * steps)
            rng = np.random.Generator(np.random.PCG64([int(seed), 0xB47C4]))  # the engine's per-member stream
            for _ in range(recipe.epochs):
                perm = torch.from_numpy(rng.permutation(train_idx)).to(device)
                if pad:
                    rng.choice(train_idx, size=pad)  # keep the stream in step with the engine's
                for s in range(0, n, b):
                    i = perm[s : s + b]
                    loss = F.cross_entropy(model(xt[i]), yt[i])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
            model.eval()
            with torch.no_grad():
                acc = (model(xt[test]).argmax(1) == yt[test]).float().mean().item()
        wall, cpu = wall + t.wall, cpu + t.cpu
        out["acc"].append(acc)
        out["wall"].append(wall)
        out["cpu"].append(cpu)
    return out
