"""rotelab: what a PyTorch model memorized instead of learned — measured, not guessed."""

__version__ = "0.1.0"

from rotelab.errors import InvalidInputError, RotelabError, StoreError  # noqa: E402
from rotelab.report import build_report  # noqa: E402
from rotelab.studies import (  # noqa: E402
    CompareResult, DiagnoseResult, MemorizationResult, SweepResult, compare, diagnose, memorization, sweep,
)

__all__ = ["build_report", "CompareResult", "DiagnoseResult", "InvalidInputError", "RotelabError", "StoreError", "SweepResult", "compare", "diagnose", "sweep",
           "MemorizationResult", "memorization",
           "__version__"]
