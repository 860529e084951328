"""``rotelab run FILE``: the studies a study file describes, one after another (each resumable)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated

import typer

from rotelab.commands.options import out

#: study kind -> the command module that renders its result
RENDERERS = {"diagnose": "rotelab.commands.diagnose", "compare": "rotelab.commands.compare",
             "sweep": "rotelab.commands.sweep", "memorization": "rotelab.commands.memorization",
             "adapt": "rotelab.commands.adapt"}


def command(
    path: Annotated[Path, typer.Argument(help="A study file (TOML), e.g. examples/study.toml or runs/<id>/study.toml.")],
    json_out: Annotated[bool, typer.Option("--json", help="print the results as a JSON list on stdout")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help="where every study of the file goes, over the "
                                                  "file's runs-dir (default: runs/, or the folder holding a study's "
                                                  "own study.toml)")] = None,
) -> None:
    """Run the studies described in a TOML study file; rerunning it trains nothing new."""
    from rotelab.study_file import load_study_file, run_study_file

    specs = load_study_file(path)  # every study checked before the first runs
    results = run_study_file(path, progress=not (json_out or quiet), runs_dir=runs_dir)
    if json_out:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return
    for spec, result in zip(specs, results):
        out.rule(f"[bold]{spec.kind}[/bold] · {spec.data} · {spec.model}")
        importlib.import_module(RENDERERS[spec.kind]).render(result)
