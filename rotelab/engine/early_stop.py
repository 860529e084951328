"""Early stopping on validation loss, per member: each keeps its best epoch's weights."""

from __future__ import annotations

import numpy as np
import torch


class EarlyStopping:
    """Watches each member's validation loss (K,) after every epoch.

    A member stops counting once ``patience`` epochs pass without a new minimum (it keeps
    training with the others, but its best weights are frozen: the snapshot of its best
    epoch is what :meth:`restore_best` brings back). The job may end when every member
    has stopped.
    """

    def __init__(self, net, *, patience: int, epochs: int, device: torch.device):
        self.patience, self.epochs = patience, epochs
        k = net.k
        self.best_loss = torch.full((k,), float("inf"), device=device)
        self.best_epoch = np.zeros(k, dtype=np.int64)
        self.stopped_at = np.full(k, epochs, dtype=np.int64)
        self.since_best = np.zeros(k, dtype=np.int64)
        self.best = net.snapshot()

    def update(self, net, epoch: int, val_loss: np.ndarray) -> None:
        """Record epoch ``epoch`` (1-based); ``val_loss`` (K,), NaN for a member without validation."""
        vl = torch.as_tensor(np.nan_to_num(val_loss, nan=np.inf), device=self.best_loss.device,
                             dtype=self.best_loss.dtype)
        improved = (vl < self.best_loss) & torch.as_tensor(self.stopped_at >= epoch, device=vl.device)
        self.best_loss = torch.where(improved, vl, self.best_loss)
        imp = improved.cpu().numpy()
        self.best_epoch[imp] = epoch
        self.since_best = np.where(imp, 0, self.since_best + 1)
        if imp.any():
            _merge_snapshot(self.best, net.snapshot(), imp)
        newly = (self.since_best >= self.patience) & (self.stopped_at == self.epochs)
        self.stopped_at[newly] = epoch

    @property
    def all_stopped(self) -> bool:
        return bool((self.stopped_at < self.epochs).all() and (self.since_best >= self.patience).all())

    def restore_best(self, net) -> None:
        net.restore(self.best, torch.ones(net.k, dtype=torch.bool, device=self.best_loss.device))


def _merge_snapshot(best, new, improved: np.ndarray) -> None:
    """best[k] <- new[k] for the members that just improved, in place: a dict of stacked
    (K, ...) tensors (vectorized members) or a list of per-member state dicts (the loop)."""
    if isinstance(best, dict):
        which = torch.as_tensor(improved, device=next(iter(best.values())).device)
        for key, v in best.items():
            m = which.view(-1, *([1] * (v.dim() - 1)))
            best[key] = torch.where(m, new[key], v)
    else:
        for i in np.flatnonzero(improved):
            best[i] = new[i]
