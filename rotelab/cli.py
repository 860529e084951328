"""The ``rotelab`` command: parses, calls the library, renders with rich. No logic lives here.

Commands come from the static ``COMMANDS`` table (name -> module defining ``command``); each
module imports only what its help needs, so ``rotelab --help`` starts without torch.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from rotelab.errors import Interrupted, RotelabError

COMMANDS = {
    "demo": "rotelab.commands.demo",
    "datasets": "rotelab.commands.datasets",
    "diagnose": "rotelab.commands.diagnose",
    "compare": "rotelab.commands.compare",
    "sweep": "rotelab.commands.sweep",
    "memorization": "rotelab.commands.memorization",
    "adapt": "rotelab.commands.adapt",
    "report": "rotelab.commands.report",
    "run": "rotelab.commands.run",
}
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def interrupted_line(exc: BaseException) -> str:
    """What Ctrl-C prints: how much is stored and that the same command resumes."""
    if isinstance(exc, Interrupted):
        return f"interrupted; {exc.stored} of {exc.total} jobs are stored, rerun the same command to resume"
    return "interrupted before any job was trained; rerun the same command to start"


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A command that says one line on Ctrl-C and on a ``RotelabError``, never a traceback."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as exc:  # the study's own clean-up (store, leases, Ray) has run by now
            print(interrupted_line(exc), file=sys.stderr)
            exit_now(INTERRUPTED)

    return run


def exit_now(code: int) -> None:
    """Flush and exit with ``code``. Not ``sys.exit``: a Ctrl-C that landed inside code some
    library runs through ``PyRun_String`` (torch's import does) leaves CPython marked as
    "interrupted", and it would end the process by SIGINT at exit instead of with ``code``."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _version(value: bool) -> None:
    if value:
        from rotelab import __version__

        print(f"rotelab {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(name="rotelab", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      rich_markup_mode=None,
                      help="What a PyTorch model memorized instead of learned: signs, scores, and what reduces it.")

    @app.callback()
    def main_options(version: Annotated[Optional[bool], typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit")] = None) -> None:
        pass

    for name, module in COMMANDS.items():
        app.command(name)(_guarded(importlib.import_module(module).command))
    return app


def _one_line_warnings() -> None:
    """rotelab's own warnings as one line each on stderr (``warning: ...``); others as Python shows them."""
    import warnings

    from rotelab.errors import RotelabWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, RotelabWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> None:
    """Entry point: a RotelabError is one line on stderr and exit code 2, never a traceback."""
    _one_line_warnings()
    command = typer.main.get_command(build_app())
    try:
        command.main(args=argv, prog_name="rotelab", standalone_mode=True)
    except RotelabError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # `python -m rotelab.cli`
    main()
