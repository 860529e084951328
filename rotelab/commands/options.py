"""What every command shares: the options built from ``rotelab.options``, the consoles, and
the way a study command runs (``study_command``). Imports nothing heavy."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from rotelab.options import DEFAULT_DATA, DEFAULT_MODEL, help_of, option_fields

out = Console()
err = Console(stderr=True)

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _rounded(v: float, digits: int) -> float:
    """``v`` rounded to ``digits`` places, a result of zero unsigned: -3.7e-17 shows as 0.0, not -0.0."""
    return round(v, digits) + 0.0  # -0.0 + 0.0 is 0.0


def pct(v: float | None) -> str:
    """0.953 -> '95.3%' (every accuracy and rate is shown in percent)."""
    return "–" if v is None or v != v else f"{_rounded(100 * v, 1):.1f}%"


def num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or v != v else f"{_rounded(v, digits):.{digits}f}"


def pp(v: float | None) -> str:
    """A signed difference of two fractions in percentage points: 0.031 -> '+3.1', -0.2 -> '-20.0';
    one that rounds to zero is '0.0', without a sign."""
    if v is None or v != v:
        return "–"
    r = _rounded(100 * v, 1)
    return f"{r:+.1f}" if r else "0.0"


def noise_note(label_noise: float) -> str:
    """What a gap means when a share of the training labels was flipped: validation is scored on
    clean labels, train accuracy on the labels trained on, so fitting none of the flips is a
    gap near minus the noise."""
    return (f"validation scored on clean labels; train accuracy on the labels trained on (flipped included), so a "
            f"model that fits none of the {pct(label_noise)} flipped labels has a gap near {pp(-label_noise)} points")


def plus_minus(row: dict, name: str) -> str:
    """' ±1.5': the half-width in points of ``row[name]``'s 95% CI, or '' without one; an
    interval cut at a bound (an accuracy near 100%) is shown as its ends, ' [87.2–100.0]'."""
    mean, lo, hi = row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"]
    if lo != lo or hi != hi:
        return ""
    if abs((mean - lo) - (hi - mean)) > 1e-9:
        return f" [{_rounded(100 * lo, 1):.1f}–{_rounded(100 * hi, 1):.1f}]"
    return f" ±{100 * (hi - mean):.1f}"


def _param(kind: str, f: Any) -> inspect.Parameter:
    """One dataclass field as a typer option: ``train_size`` -> ``--train-size``."""
    name = f.type.replace(" | None", "")
    base = f.metadata.get("cli_type") or _TYPES[name]
    optional = "None" in f.type or f.default is None
    flag = "--" + f.name.replace("_", "-")
    decls = (f"{flag}/--no-{flag[2:]}",) if base is bool else (flag,)
    annotation = Annotated[Optional[base] if optional else base, typer.Option(*decls, help=help_of(kind, f))]
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=annotation)


def _fixed_params(kind: str) -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    data_help = "a built-in dataset (digits, mnist1d, synthetic) or a dataset file or folder"
    return [
        inspect.Parameter("data", kw, default=DEFAULT_DATA,
                          annotation=Annotated[str, typer.Option("--data", help=data_help)]),
        inspect.Parameter("model", kw, default=DEFAULT_MODEL, annotation=Annotated[str, typer.Option(
            "--model", help="mlp, cnn or resnet (images), cnn1d (sequences)")]),
    ]


def output_params() -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("json_out", kw, default=False, annotation=Annotated[bool, typer.Option(
            "--json", help="print the result as JSON on stdout (no progress bar)")]),
        inspect.Parameter("quiet", kw, default=False, annotation=Annotated[bool, typer.Option(
            "--quiet", "-q", help="no progress bar")]),
    ]


def study_command(kind: str, render: Callable[[Any], None], doc: str) -> Callable[..., None]:
    """The ``rotelab KIND`` command: every option of ``kind``, then the study, then ``render``."""

    def command(**values: Any) -> None:
        import importlib

        from rotelab.studies import KINDS

        json_out, quiet = values.pop("json_out"), values.pop("quiet")
        data, model = values.pop("data"), values.pop("model")
        module, name, _ = KINDS[kind]
        run = getattr(importlib.import_module(module), name)
        result = run(data, model, progress=not (json_out or quiet), **values)
        if json_out:
            print(json.dumps(result.to_dict(), indent=2))
        else:
            render(result)

    params = _fixed_params(kind) + [_param(kind, f) for f in option_fields(kind)] + output_params()
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = command.__qualname__ = kind
    command.__doc__ = doc
    return command


__all__ = ["err", "num", "out", "output_params", "pct", "pp", "study_command"]
