"""Executors train a list of jobs; the study code does not know which one runs them."""

from rotelab.executors.base import Executor
from rotelab.executors.driver import run_jobs
from rotelab.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "run_jobs"]
