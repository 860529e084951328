"""The ``rotelab`` command: parses, calls the library, renders with rich. No logic lives here.

Commands come from the static ``COMMANDS`` table (name -> module defining ``command``); each
module imports only what its help needs, so ``rotelab --help`` starts without torch.
"""

from __future__ import annotations

import functools
import importlib
import signal
import sys
import threading
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


#: Set when SIGTERM (a batch scheduler's stop, `kill`) ended the command rather than Ctrl-C.
_TERMINATED: list[bool] = [False]
#: Exit codes: 128 + the signal's number, as a shell reports a process the signal ended.
INTERRUPTED_BY = {False: INTERRUPTED, True: 143}


def interrupted_line(exc: BaseException) -> str:
    """What Ctrl-C or SIGTERM prints: how much is stored and that the same command resumes.
    Without a count (before training started, or after every job was stored), nothing finished
    was lost either."""
    what = "terminated (SIGTERM)" if _TERMINATED[0] else "interrupted"
    if isinstance(exc, Interrupted):
        return f"{what}; {exc.stored} of {exc.total} jobs are stored, rerun the same command to resume"
    return f"{what}; every finished job is stored, rerun the same command to resume"


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM takes Ctrl-C's path: the study stores what finished and releases its leases."""
    _TERMINATED[0] = True
    raise KeyboardInterrupt


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A command that says one line on Ctrl-C and on a ``RotelabError``, never a traceback."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as exc:  # the study's own clean-up (store, leases, Ray) has run by now
            print(interrupted_line(exc), file=sys.stderr)
            exit_now(INTERRUPTED_BY[_TERMINATED[0]])

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


def _click_exceptions() -> Any:
    """The module of click's exceptions as this typer raises them (typer vendors click since 0.2x)."""
    try:
        from typer._click import exceptions
    except ImportError:  # an older typer: click itself
        from click import exceptions
    return exceptions


_EXPECTED = {int: "a whole number", float: "a number", "integer": "a whole number", "float": "a number"}


def _expected(param: Any) -> str | None:
    """What an option takes, in words ("a whole number"), where it is a number; else None."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)  # typer's own parsing
    click_type = getattr(getattr(param, "type", None), "name", None)  # click's types (older typer)
    for t in (annotation, click_type):
        if isinstance(t, (type, str)) and t in _EXPECTED:
            return _EXPECTED[t]
    return None


def _given(args: list[str], opts: list[str]) -> str | None:
    """The value ``args`` gives the option named ``opts`` (its last), or None."""
    value = None
    for i, a in enumerate(args):
        if a in opts and i + 1 < len(args):
            value = args[i + 1]
        elif "=" in a and a.split("=", 1)[0] in opts:
            value = a.split("=", 1)[1]
    return value


def usage_line(exc: Any, args: list[str]) -> str:
    """A usage error as one line, without click's usage block: an option given a value of the
    wrong type names the option, the type it takes and the value; any other, the help to read."""
    errors = _click_exceptions()
    param = getattr(exc, "param", None)
    expected = _expected(param)
    if expected and isinstance(exc, errors.BadParameter) and not isinstance(exc, errors.MissingParameter):
        given = _given(args, list(param.opts))
        return f"{max(param.opts, key=len)} expects {expected}" + (f", got {given!r}" if given is not None else "")
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else " ".join(["rotelab"] + [a for a in args[:1] if a in COMMANDS])
    return f"{exc.format_message().rstrip('.')} (see '{path} --help')"


def main(argv: list[str] | None = None) -> None:
    """Entry point: a RotelabError or a usage error (an unknown option, a value of the wrong type)
    is one line on stderr and exit code 2, never a traceback or click's usage block."""
    _one_line_warnings()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    args = sys.argv[1:] if argv is None else list(argv)
    command = typer.main.get_command(build_app())
    errors = _click_exceptions()
    try:
        code = command.main(args=args, prog_name="rotelab", standalone_mode=False)
    except RotelabError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    except errors.UsageError as exc:
        if isinstance(exc, getattr(errors, "NoArgsIsHelpError", ())):  # `rotelab` alone: the help
            exc.show()
        else:
            print(f"Error: {usage_line(exc, args)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except errors.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # `python -m rotelab.cli`
    main()
