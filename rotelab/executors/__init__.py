"""Executors train a list of jobs; the study code does not know which one runs them."""

from rotelab.executors.base import Executor
from rotelab.executors.choose import EXECUTORS, check_executor_options, make_executor
from rotelab.executors.driver import run_jobs
from rotelab.executors.local import LocalExecutor
from rotelab.executors.ray import RayExecutor

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "check_executor_options", "make_executor",
           "run_jobs"]
