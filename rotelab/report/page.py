"""One self-contained HTML page for one or more studies: figures embedded, no server, no network.

Every string that comes from the user (dataset, class and file names) reaches the page only
through Jinja2's autoescaping, so a class named ``<script>`` shows as text.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from rotelab.errors import RotelabWarning, StoreError
from rotelab.report import adapt_section, compare_section, diagnose_section, memorization_section, sweep_section
from rotelab.report.blocks import generic_blocks
from rotelab.store import RESULT_FILE, STUDY_FILE, Store, atomic_write_bytes

REPORT_FILE = "report.html"


#: study kind -> the function that turns its files into blocks (a study of another kind gets a table of its numbers)
SECTIONS: dict[str, Callable[[dict, dict, Path], list[dict]]] = {
    "diagnose": diagnose_section.blocks, "compare": compare_section.blocks, "sweep": sweep_section.blocks,
    "memorization": memorization_section.blocks, "adapt": adapt_section.blocks,
}


# ── reading studies and writing the page ───────────────────────────────────────────────
#: The order a reader asks the questions in: is it memorizing, what helps, why, on which examples.
KIND_ORDER = ("diagnose", "compare", "sweep", "memorization", "adapt")


def _reading_order(study_dir: Path) -> tuple[int, str]:
    """Studies of a runs directory by kind in ``KIND_ORDER`` (their names start with it), then by name."""
    kind = study_dir.name.split("-", 1)[0]
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), study_dir.name)


def find_studies(paths: list[str | Path]) -> list[Path]:
    """Study directories named directly (in the order given), or every study inside a runs
    directory (in ``KIND_ORDER``)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / STUDY_FILE).is_file():
            found.append(p)
        elif p.is_dir() and any((c / STUDY_FILE).is_file() for c in p.iterdir() if c.is_dir()):
            # inside a runs directory, studies still running (no result yet) are left out
            found += sorted((c for c in p.iterdir() if (c / STUDY_FILE).is_file() and (c / RESULT_FILE).is_file()),
                            key=_reading_order)
        else:
            Store.open(p)  # raises the precise StoreError (missing dir, missing file, version)
    if not found:
        raise StoreError("no study found in " + ", ".join(map(str, paths)))
    return found


def load_study(path: Path) -> tuple[dict, dict]:
    store = Store.open(path)
    try:
        study = store.read_json(STUDY_FILE)
        result = store.read_json(RESULT_FILE)
    finally:
        store.close()
    for key in ("kind", "config", "dataset", "context"):
        if key not in study:
            raise StoreError(f"{path / STUDY_FILE}: missing {key!r}; written by another version of rotelab?")
    return study, result


def _meta(study: dict) -> list[tuple[str, str]]:
    d, cfg, ctx = study["dataset"], study["config"], study["context"]
    recipe = _recipe(cfg)
    model = recipe.get("model", {})
    shape = "x".join(map(str, d.get("feature_shape", [])))
    meta = [
        ("data", f"{d.get('name')} — {d.get('n_train')} train / {d.get('n_test')} test, {d.get('n_classes')} classes, "
                 f"features {shape}" + (f", {d.get('n_noisy')} flipped labels" if d.get("n_noisy") else "")),
        ("classes", ", ".join(map(str, d.get("classes", [])))),
    ]
    if d.get("ids"):  # what '#86' or a path in the tables below points to in the user's source
        meta.append(("example ids", str(d["ids"])))
    if model:
        meta.append(("model", f"{model.get('name')} (width {model.get('width')}, depth {model.get('depth')}, "
                              f"dropout {model.get('dropout')})"))
    if recipe:
        meta.append(("training", f"{recipe.get('epochs')} epochs, batch {recipe.get('batch_size')}, "
                                 f"{recipe.get('optimizer')} lr {recipe.get('lr')} ({recipe.get('schedule')})"))
    if cfg.get("techniques"):
        meta.append(("techniques", ", ".join(map(str, cfg["techniques"]))))
    for key in ("seeds", "folds", "repeats", "models", "subset", "seed"):
        if key in cfg:
            meta.append((key, str(cfg[key])))
    meta.append(("versions", f"rotelab {ctx.get('rotelab')}, torch {ctx.get('torch')}, numpy {ctx.get('numpy')}, "
                             f"python {ctx.get('python')}"))
    meta.append(("run", f"{ctx.get('time')} on {ctx.get('device')} ({ctx.get('threads')} threads)"
                        + (f", git {ctx['git_commit'][:10]}" if ctx.get("git_commit") else "")))
    return meta


def _heading(study: dict) -> str:
    """'compare · digits · mlp · baseline, dropout=0.5 · 10% label noise': the kind, the data and
    the model, then what tells apart two studies of one kind on the same data."""
    cfg = study["config"]
    parts = [study["kind"], str(study["dataset"].get("name")), str(_recipe(cfg).get("model", {}).get("name", ""))]
    what = cfg.get("techniques") or (cfg.get("cells") if cfg.get("cells") != ["baseline"] else None)
    if what:
        text = ", ".join(map(str, what))
        parts.append(text if len(text) <= 60 else text[:59] + "…")
    if cfg.get("settings", {}).get("technique"):
        parts.append(f"{cfg['settings']['technique']} by {', '.join(cfg['settings'].get('schemes', []))}")
    if cfg.get("train_size"):
        parts.append(f"{cfg['train_size']} train")
    if cfg.get("label_noise"):
        parts.append(f"{100 * cfg['label_noise']:g}% label noise")
    return " · ".join(p for p in parts if p)


def _recipe(cfg: dict) -> dict:
    return cfg.get("recipe") or (cfg.get("recipes") or cfg.get("cells") or [{}])[0] or {}


def _command(study: dict) -> str:
    """The command that reproduces the study: as it was typed, or the equivalent one."""
    ctx, cfg, kind = study["context"], study["config"], study["kind"]
    if ctx.get("command"):
        return ctx["command"]
    recipe = _recipe(cfg)
    model = recipe.get("model", {})
    parts = ["rotelab", kind, "--data", str(cfg.get("data")), "--model", str(model.get("name"))]
    for key, flag in (("width", "--width"), ("depth", "--depth")):
        if model.get(key) is not None and not str(model.get("name", "")).startswith("custom"):
            parts += [flag, str(model[key])]
    for key, flag in (("epochs", "--epochs"), ("lr", "--lr"), ("batch_size", "--batch-size")):
        if recipe.get(key) is not None:
            parts += [flag, str(recipe[key])]
    techniques = cfg.get("techniques") or (cfg.get("cells") if kind == "memorization" else None)
    if techniques and techniques != ["baseline"]:
        parts += ["--techniques", ",".join(map(str, techniques))]
    for key, flag in (("seeds", "--seeds"), ("folds", "--folds"), ("repeats", "--repeats"), ("models", "--models"),
                      ("subset", "--subset"), ("val_fraction", "--val-fraction"), ("train_size", "--train-size"),
                      ("label_noise", "--label-noise"), ("seed", "--seed")):
        if cfg.get(key) not in (None, 0, 0.0) or (key == "seed" and cfg.get(key) is not None):
            parts += [flag, str(cfg[key])]
    return " ".join(parts)


def _tell_apart(sections: list[dict]) -> None:
    """Headings that are still the same (two studies that differ in epochs or seed) get their
    study's folder name, so that the table of contents tells them apart."""
    seen: dict[str, int] = {}
    for s in sections:
        seen[s["heading"]] = seen.get(s["heading"], 0) + 1
    for s in sections:
        if seen[s["heading"]] > 1:
            s["heading"] += f" ({s['anchor']})"


def build_report(paths: list[str | Path], out: str | Path | None = None) -> Path:
    """Render the studies at ``paths`` into one HTML file (default: ``report.html`` inside the
    first path, a study directory or a runs directory holding several)."""
    studies = find_studies(paths)
    sections = []
    for path in list(studies):
        try:
            study, result = load_study(path)
        except StoreError as exc:  # one damaged study does not take the others' report down with it
            if len(studies) == 1:
                raise
            warnings.warn(f"{exc}; left out of the report", RotelabWarning, stacklevel=2)
            studies.remove(path)
            continue
        kind = study["kind"]
        blocks = SECTIONS.get(kind, generic_blocks)(study, result, path)
        headings = []
        for n, block in enumerate(b for b in blocks if b["kind"] == "heading"):  # the table of contents
            block["id"] = f"{path.name}-{n}"
            headings.append((block["id"], block["text"]))
        sections.append({
            "anchor": path.name, "heading": _heading(study), "headings": headings,
            "meta": _meta(study), "command": _command(study), "blocks": blocks,
            "study_file": str(path / "study.toml") if (path / "study.toml").is_file() else "",
        })
    _tell_apart(sections)
    if not studies:
        raise StoreError("no readable study in " + ", ".join(map(str, paths)) + "; rerun the studies")
    from rotelab import __version__

    env = jinja2.Environment(loader=jinja2.PackageLoader("rotelab.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    title = studies[0].name if len(studies) == 1 else f"{len(studies)} studies"
    html = env.get_template("report.html").render(
        title=title, studies=sections, rotelab_version=__version__,
        built=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    if out is None:  # beside the study, or in the runs directory that was named
        out = Path(paths[0]) / REPORT_FILE
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, html.encode("utf-8"))
    return out
