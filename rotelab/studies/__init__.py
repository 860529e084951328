"""Studies: each plans jobs, runs them through an executor, and applies the measures."""

from rotelab.studies.compare import CompareResult, compare
from rotelab.studies.diagnose import DiagnoseResult, diagnose
from rotelab.studies.memorization import MemorizationResult, memorization
from rotelab.studies.sweep import SweepResult, sweep

__all__ = ["CompareResult", "DiagnoseResult", "MemorizationResult", "SweepResult", "compare", "diagnose",
           "memorization", "sweep"]
