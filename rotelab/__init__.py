"""rotelab: what a PyTorch model memorized instead of learned — measured, not guessed."""

__version__ = "0.1.0"

from rotelab.errors import InvalidInputError, RotelabError, StoreError  # noqa: E402
from rotelab.studies import DiagnoseResult, diagnose  # noqa: E402

__all__ = ["DiagnoseResult", "InvalidInputError", "RotelabError", "StoreError", "diagnose", "__version__"]
