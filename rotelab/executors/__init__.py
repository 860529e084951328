"""Executors train a list of jobs; the study code does not know which one runs them."""

from rotelab.executors.local import run_jobs

__all__ = ["run_jobs"]
