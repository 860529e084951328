"""Which executor a study runs on, from its options: ``executor``, ``ray_address``,
``cpus_per_job``, ``gpus_per_job``. These say where and how fast jobs train, never what they
compute, so they stay out of study ids and job keys (as ``threads`` does)."""

from __future__ import annotations

import os

from rotelab.errors import InvalidInputError
from rotelab.executors.base import Executor
from rotelab.options import TrainingOptions
from rotelab.validation import check_choice, check_float

EXECUTORS = ("local", "ray")
_RAY_ONLY = ("ray_address", "cpus_per_job", "gpus_per_job")


def check_executor_options(opts: TrainingOptions) -> None:
    """Validate the executor options before anything runs; InvalidInputError naming the fix.

    ``--executor ray`` without Ray installed says how to install it, and a cluster address
    that does not answer is named at once; a Ray option given to the local executor is
    refused rather than ignored.
    """
    check_choice("executor", str(opts.executor), EXECUTORS)
    given = [name for name in _RAY_ONLY if getattr(opts, name) is not None]
    if opts.executor == "local" and given:
        flag = "--" + given[0].replace("_", "-")
        raise InvalidInputError(f"{flag} applies to the Ray executor only; add --executor ray, or leave {flag} out")
    if opts.cpus_per_job is not None:
        check_float("cpus per job", opts.cpus_per_job, low=0.0, low_open=True)
    if opts.gpus_per_job is not None:
        check_float("gpus per job", opts.gpus_per_job, low=0.0, high=1.0, low_open=True)
        if str(opts.device) == "cpu":
            raise InvalidInputError("--gpus-per-job asks for GPUs but --device is cpu; use --device auto or cuda")
    if opts.executor == "ray":
        from rotelab.executors.ray import check_address, require_ray

        require_ray()
        check_address(opts.ray_address or os.environ.get("RAY_ADDRESS"))


def make_executor(opts: TrainingOptions) -> Executor:
    """The executor ``opts`` names (checked by :func:`check_executor_options`)."""
    if opts.executor == "ray":
        from rotelab.executors.ray import RayExecutor

        return RayExecutor(address=opts.ray_address, cpus_per_job=opts.cpus_per_job,
                           gpus_per_job=opts.gpus_per_job)
    from rotelab.executors.local import LocalExecutor

    return LocalExecutor()


__all__ = ["EXECUTORS", "check_executor_options", "make_executor"]
