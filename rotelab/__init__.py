"""rotelab: what a PyTorch model memorized instead of learned — measured, not guessed."""

__version__ = "0.1.0"

from rotelab.errors import InvalidInputError, RotelabError, StoreError  # noqa: E402
from rotelab.report import build_report  # noqa: E402
from rotelab.studies import CompareResult, DiagnoseResult, SweepResult, compare, diagnose, sweep  # noqa: E402

__all__ = ["build_report", "CompareResult", "DiagnoseResult", "InvalidInputError", "RotelabError", "StoreError", "SweepResult", "compare", "diagnose", "sweep",
           "__version__"]
