"""`rotelab demo`: the main job: diagnose, compare, memorization on built-in data, one report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rotelab.cli import Device, app, out


@app.command()
def demo(
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where the demo's studies are stored.")] = Path("runs/demo"),
    device: Device = "auto",
) -> None:
    """Run the default studies on built-in data and write one HTML report (resumable)."""
    from rotelab.demo import run_demo

    r = run_demo(runs_dir, device=device)
    out.rule("[bold]what rotelab found")
    for line in r.headlines:
        out.print(f"• {line}")
    out.print(f"\nreport: [bold]{r.report}[/bold]  (open it in a browser; `rotelab report {runs_dir}` rebuilds it)")
