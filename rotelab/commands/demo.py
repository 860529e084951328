"""``rotelab demo``: the main job: diagnose, compare, memorization on built-in data, one report."""

from __future__ import annotations

from typing import Annotated

import typer

from rotelab.commands.options import out


def command(
    runs_dir: Annotated[str, typer.Option("--runs-dir", help="Where the demo's studies are stored.")] = "runs/demo",
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Run the default studies on built-in data and write one HTML report (resumable)."""
    from rotelab.demo import run_demo

    r = run_demo(runs_dir, device=device, progress=not quiet)
    out.rule("[bold]what rotelab found")
    for line in r.headlines:
        out.print(f"• {line}")
    out.print(f"\nreport: [bold]{r.report}[/bold]  (open it in a browser; `rotelab report {runs_dir}` rebuilds it)")
