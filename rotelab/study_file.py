"""Study files: one or more studies described in TOML, run by ``rotelab run FILE``.

::

    # what to run; keys are the command-line options without their dashes
    [[study]]
    kind = "diagnose"
    data = "mnist1d"
    model = "mlp"
    seeds = 3

    [[study]]
    kind = "compare"
    data = "digits"
    train-size = 300
    label-noise = 0.2
    techniques = ["baseline", "dropout", "l2"]   # or "baseline,dropout,l2"

Keys are written as on the command line (``train-size``; ``train_size`` is read too); a
key left out takes its default. Relative paths (``data``, ``runs-dir``) are read from the
current directory, as on the command line. Every study also writes its own ``study.toml``
into its directory, with every option resolved but ``runs-dir``, so ``rotelab run
runs/<id>/study.toml`` reproduces it in place and reuses every finished job, from any current
directory and after the runs folder was moved. This module reads and writes the files and
checks them; nothing heavy is imported here.
"""

from __future__ import annotations

import contextlib
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rotelab.errors import InvalidInputError
from rotelab.options import DEFAULT_DATA, DEFAULT_MODEL, STUDY_OPTIONS, option_fields

#: Placeholders written where a study's data or model came from Python and cannot be named in a file.
FROM_PYTHON = "<from Python>"
_COMMON = ("kind", "data", "model")


@dataclass(frozen=True)
class StudySpec:
    """One ``[[study]]`` table, checked: its kind, data, model and options by Python name."""

    kind: str
    data: str
    model: str
    options: dict[str, Any]


# ══ reading ════════════════════════════════════════════════════════════════════════════
def load_study_file(path: str | Path) -> list[StudySpec]:
    """Read and check every study in ``path``; one :class:`InvalidInputError` line per problem."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such study file")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: not valid TOML ({exc})") from None
    extra = sorted(set(doc) - {"study"})
    if extra:
        raise InvalidInputError(f"{path}: unknown top-level key {extra[0]!r}; describe each study in a [[study]] table")
    studies = doc.get("study")
    if not isinstance(studies, list) or not studies or not all(isinstance(s, dict) for s in studies):
        raise InvalidInputError(f"{path}: no [[study]] table; add one with kind = \"diagnose\" (or compare, "
                                "sweep, memorization, adapt)")
    specs = [_check_study(path, i + 1, table) for i, table in enumerate(studies)]
    if (path.parent / "study.json").is_file():  # a study's own file: it reruns where it lies
        specs = [s if "runs_dir" in s.options else
                 StudySpec(s.kind, s.data, s.model, {**s.options, "runs_dir": str(path.parent.parent)}) for s in specs]
    return specs


def _check_study(path: Path, number: int, table: dict[str, Any]) -> StudySpec:
    where = f"{path}: study {number}"
    kind = table.get("kind")
    if kind not in STUDY_OPTIONS:
        got = "no kind" if kind is None else f"kind {kind!r}"
        raise InvalidInputError(f"{where}: {got}; expected kind = one of {', '.join(STUDY_OPTIONS)}")
    where = f"{where} ({kind})"
    known = {f.name: f for f in option_fields(kind)}
    options: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if key in _COMMON:
            if not isinstance(value, str):
                raise InvalidInputError(f"{where}: {key!r} must be a string, got {_toml(value)}")
            continue
        if name not in known:
            valid = ", ".join([*_COMMON, *(n.replace("_", "-") for n in known)])
            raise InvalidInputError(f"{where}: unknown key {key!r}; valid keys: {valid}")
        options[name] = _check_value(where, key, value, known[name].type)
    for key in ("data", "model"):
        if table.get(key) == FROM_PYTHON:
            raise InvalidInputError(f"{where}: this study's {key} came from Python and cannot be rerun from a "
                                    "file; run it from Python again, or name a built-in or a file")
    return StudySpec(kind, table.get("data", DEFAULT_DATA), table.get("model", DEFAULT_MODEL), options)


def _check_value(where: str, key: str, value: Any, annotation: str) -> Any:
    """``value`` if TOML gave the type ``annotation`` names (``int | None`` etc.); lists of
    names or numbers are joined with commas for the options that take comma-separated text."""
    wanted = annotation.replace(" | None", "")
    if wanted == "str" and isinstance(value, list) and all(isinstance(v, (str, int)) for v in value):
        return ",".join(str(v) for v in value)
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool),
          "str": isinstance(value, str)}.get(wanted, False)
    if not ok:
        article = {"int": "a whole number", "float": "a number", "bool": "true or false",
                   "str": "a string, or a list of names or numbers"}[wanted]
        raise InvalidInputError(f"{where}: {key!r} must be {article}, got {_toml(value)}")
    return float(value) if wanted == "float" else value


def run_study_file(path: str | Path, *, progress: Any = None, runs_dir: str | Path | None = None) -> list[Any]:
    """Run every study in ``path`` in order (each resumable); returns their results. Every
    study is checked before the first one runs: its keys and types here, its values by the
    study itself, stopped before it writes (a typo in study 2 costs no training of study 1).
    ``runs_dir``: where every study goes, over the file's own ``runs-dir``."""
    import importlib

    from rotelab.studies import KINDS

    from rotelab.studies.prepare import check_only

    specs = list(enumerate(load_study_file(path), 1))
    if runs_dir is not None:  # the command line's --runs-dir, over the file's
        specs = [(n, StudySpec(s.kind, s.data, s.model, {**s.options, "runs_dir": str(runs_dir)})) for n, s in specs]
    runs = [getattr(importlib.import_module(KINDS[spec.kind][0]), KINDS[spec.kind][1]) for _, spec in specs]
    for (number, spec), run in zip(specs, runs):  # values only a study can judge (a train size too large),
        with _prefixed(path, number, spec.kind):  # for every study before the first one trains
            check_only(run, spec.data, spec.model, progress=False, **spec.options)
    results = []
    for (number, spec), run in zip(specs, runs):
        with _prefixed(path, number, spec.kind):
            results.append(run(spec.data, spec.model, progress=progress, **spec.options))
    return results


@contextlib.contextmanager
def _prefixed(path: str | Path, number: int, kind: str) -> Iterator[None]:
    """An input error of study ``number`` names the file and the study, as the file's own checks do."""
    try:
        yield
    except InvalidInputError as exc:
        exc.args = (f"{path}: study {number} ({kind}): {exc}",)
        raise


# ══ writing ════════════════════════════════════════════════════════════════════════════
def study_file_text(kind: str, data: Any, model: Any, values: dict[str, Any]) -> str:
    """The ``study.toml`` that reruns a study: ``values`` are its options by Python name
    (None = default, left out)."""
    lines = ["# rotelab study file: `rotelab run <this file>` reproduces this study and reuses its",
             "# finished jobs, in the folder that holds this study's folder (wherever it was moved).",
             "# Other relative paths are read from the current directory.", "", "[[study]]",
             f"kind = {_toml(kind)}", f"data = {_toml(_name_of_data(data))}", f"model = {_toml(_name_of_model(model))}"]
    for f in option_fields(kind):
        value = values.get(f.name)
        if value is not None and f.name != "runs_dir":  # read from where the file lies
            lines.append(f"{f.name.replace('_', '-')} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _name_of_data(data: Any) -> str:
    from rotelab.data.builtin import BUILTIN

    if isinstance(data, (str, Path)):
        return str(data) if str(data) in BUILTIN else str(Path(data).resolve())
    path = getattr(data, "info", {}).get("path") if hasattr(data, "info") else None
    return str(Path(path).resolve()) if path else FROM_PYTHON


def _name_of_model(model: Any) -> str:
    return model if isinstance(model, str) else FROM_PYTHON


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string: JSON's escapes


__all__ = ["FROM_PYTHON", "StudySpec", "load_study_file", "run_study_file", "study_file_text"]
