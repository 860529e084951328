"""rotelab: what a PyTorch model memorized instead of learned — measured, not guessed.

The public names load on first use, so ``import rotelab`` (and ``rotelab --help``) stays
fast: torch and the report's plotting load only when a study or a report needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_PUBLIC = {
    "diagnose": "rotelab.studies.diagnose", "DiagnoseResult": "rotelab.studies.diagnose",
    "compare": "rotelab.studies.compare", "CompareResult": "rotelab.studies.compare",
    "sweep": "rotelab.studies.sweep", "SweepResult": "rotelab.studies.sweep",
    "memorization": "rotelab.studies.memorization", "MemorizationResult": "rotelab.studies.memorization",
    "adapt": "rotelab.studies.adapt", "AdaptResult": "rotelab.studies.adapt",
    "build_report": "rotelab.report.page",
    "run_study_file": "rotelab.study_file",
    "RotelabError": "rotelab.errors", "InvalidInputError": "rotelab.errors", "StoreError": "rotelab.errors",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # once loaded, a plain attribute
        return value
    raise AttributeError(f"module 'rotelab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
