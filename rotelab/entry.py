"""The console entry point, kept free of imports: Ctrl-C while the command is still
loading (typer, torch) prints one line and exits 130, never a traceback."""

import sys


def main() -> None:
    try:
        from rotelab.cli import main as run

        run()
    except KeyboardInterrupt:
        import os

        print("interrupted before any job was trained; rerun the same command to start", file=sys.stderr)
        sys.stderr.flush()
        os._exit(130)  # see rotelab.cli.exit_now
