"""What every run records beside its arrays: versions, device, seed, command, git commit."""

from __future__ import annotations

import datetime as _dt
import platform
import shlex
import subprocess
import sys

import numpy as np
import torch


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


#: options that change what a command prints, not what it computes
_OUTPUT_ONLY = ("-q", "--quiet", "--json")


def cli_command(kind: str | None) -> str | None:
    """The command line, when this process is the ``rotelab KIND`` command itself (not the demo),
    quoted for a shell, less the options that change only what is printed (``-q``, ``--json``)."""
    args = sys.argv[1:]
    launched_as_cli = bool(sys.argv) and (sys.argv[0].endswith("rotelab") or sys.argv[0].endswith("__main__.py"))
    if launched_as_cli and kind is not None and args[:1] == [kind]:
        return shlex.join(["rotelab", *(a for a in args if a not in _OUTPUT_ONLY)])
    return None


def run_context(device: str, kind: str | None = None) -> dict:
    from rotelab import __version__

    return {
        "rotelab": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "command": cli_command(kind),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
