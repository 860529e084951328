"""``rotelab report``: one self-contained HTML page for one or more studies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.commands.options import out


def command(
    paths: Annotated[list[Path], typer.Argument(help="Study directories, or a runs directory holding several.")],
    output: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where to write the page.")] = None,
) -> None:
    """Rebuild the HTML report (figures embedded; opens from disk, no server, no network)."""
    from rotelab.report.page import build_report

    path = build_report(list(paths), output)
    out.print(f"report: {path}")
