"""Studies as jobs: a job is one recipe and K members (seed + train/validation masks).

Cross-validation folds, technique cells, memorization subset models and shadow models are
all jobs; the executors train them and the store keeps them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from rotelab.engine.recipe import Recipe
from rotelab.engine.train import Members
from rotelab.store import FORMAT_VERSION


@dataclass(frozen=True, eq=False)
class Job:
    """One engine call: ``label`` names it for people (``"l2 / folds 0-4"``)."""

    label: str
    recipe: Recipe
    members: Members
    job_seed: int

    def key(self, data_fingerprint: str, model_fingerprint: str) -> str:
        """Content hash: the same data, model, recipe, seeds and masks give the same key."""
        h = hashlib.sha256()
        h.update(json.dumps(
            {"v": FORMAT_VERSION, "recipe": self.recipe.to_dict(), "seeds": self.members.seeds.tolist(),
             "job_seed": self.job_seed, "data": data_fingerprint, "model": model_fingerprint},
            sort_keys=True).encode())
        for mask in (self.members.train_mask, self.members.val_mask):
            h.update(str(mask.shape).encode())
            h.update(np.packbits(mask, axis=None).tobytes())
        return h.hexdigest()[:20]


def chunked(n_members: int, chunk: int) -> list[range]:
    """Member index ranges of at most ``chunk``: a job per range, so an interrupt loses one."""
    return [range(s, min(s + chunk, n_members)) for s in range(0, n_members, chunk)]
