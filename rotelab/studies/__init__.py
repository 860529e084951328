"""Studies: each plans jobs, runs them through an executor, and applies the measures."""

from rotelab.studies.diagnose import DiagnoseResult, diagnose

__all__ = ["DiagnoseResult", "diagnose"]
