"""Tables at 80, 60 and 40 columns: long ids and technique names fold, every column is shown
in full in one of the stacked tables, no line is wider than the terminal; signed zeros, the
gap's unit, the note under a cut table; a value of the wrong type is one line."""

from __future__ import annotations

import io
import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from conftest import run_cli, run_main
from rotelab.commands import compare, memorization
from rotelab.commands.options import num, pct, pp
from rotelab.commands.tables import Column, fold, print_table

LONG_IDS = [f"{c}/session_2024_05_17_camera_left_batch_{k % 3}/img_{341 + k:04d}_augmented_original_capture.png"
            for k, c in enumerate(["one", "two", "three"] * 4)]
TECHNIQUES = ["baseline", "augment=flip+rotate+translate", "dropout=0.3+l2=0.5", "mixup=1.0+dropout=0.5",
              "label-smoothing=0.2", "early-stop=5"]


def _squeeze(s: str) -> str:
    return "".join(s.split())


def _columns(lines: list[str], bar: str) -> list[str]:
    """Each column's text down ``lines`` (a table's header or body), whitespace removed."""
    cells = [line[1:-1].split(bar) for line in lines]
    return ["".join(_squeeze(row[k]) for row in cells) for k in range(len(cells[0]))]


def parse_tables(text: str) -> list[list[tuple[str, str]]]:
    """Each rich table in ``text``: per column, (header, body), each with whitespace removed and
    folded lines joined (so a folded cell reads as the cell)."""
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        if lines[i].startswith("┏"):
            mid = next(j for j in range(i, len(lines)) if lines[j].startswith("┡"))
            end = next(j for j in range(mid, len(lines)) if lines[j].startswith("└"))
            found.append(list(zip(_columns(lines[i + 1:mid], "┃"), _columns(lines[mid + 1:end], "│"))))
            i = end
        i += 1
    return found


def assert_shown_whole(text: str, width: int, columns: list[str], rows: list[list[str]]) -> None:
    """No line wider than ``width``, no ellipsis; each column, header and every cell in order,
    whole in one table, and the first (the row's name) in every table."""
    assert max(len(line) for line in text.splitlines()) <= width, text
    assert "…" not in text
    tables = parse_tables(text)
    assert tables, text
    shown = {head: body for table in tables for head, body in table}
    for k, header in enumerate(columns):
        assert _squeeze(header) in shown, (header, text)
        assert shown[_squeeze(header)] == "".join(_squeeze(row[k]) for row in rows), (header, text)
    assert all(table[0][0] == _squeeze(columns[0]) for table in tables), text


def _console(width: int) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=width, force_terminal=False, color_system=None), buf


@pytest.mark.parametrize("width", [80, 60, 40])
@pytest.mark.parametrize("case", ["ids", "techniques", "prose"])
def test_every_cell_is_whole_or_folded_never_cropped(width, case):
    if case == "ids":
        cols = [Column("id", key=True), Column("given\nlabel", key=True), Column("predicted\n(held out)", key=True),
                Column("score", key=True), Column("±\nstderr"), Column("flipped")]
        rows = [[i, "three", "one", f"0.{k}12", "0.031", "yes" if k % 2 else ""] for k, i in enumerate(LONG_IDS)]
    elif case == "techniques":
        cols = [Column("technique", key=True), Column("clean val acc\n±95% CI", key=True),
                Column("noisy labels\nmemorized", key=True), Column("Δ val acc\n(points)", key=True),
                Column("p", key=True), Column("train\nacc"), Column("gap acc\n(points)"), Column("gap\nloss"),
                Column("test\nacc"), Column("model-\nepochs")]
        names = [t + (" ★" if k == 1 else "") for k, t in enumerate(TECHNIQUES)]
        rows = [[t, "57.3% ±11.7", "12.5%", "-20.3", "<0.001", "62.5%", "+5.2", "-0.030", "57.9%", "9"]
                for t in names]
    else:  # prose columns wrap at spaces
        cols = [Column("technique", key=True), Column("default", key=True, justify="left", wrap=True),
                Column("meaning", justify="left", wrap=True)]
        rows = [["augment", "by data kind: image rotate+translate+crop; vector noise",
                 "transforms joined by + (flip, rotate, translate, crop, noise, shift, scale)"],
                ["label-smoothing", "0.1", "ε in [0, 1)"]]
    console, buf = _console(width)
    print_table(console, "title", cols, rows, caption="a caption")
    assert_shown_whole(buf.getvalue(), width, [c.header for c in cols], rows)


def test_a_table_that_fits_is_one_table_unfolded():
    console, buf = _console(80)
    print_table(console, "", [Column("technique", key=True), Column("val acc")], [[t, "1.0%"] for t in TECHNIQUES])
    assert len(parse_tables(buf.getvalue())) == 1
    for t in TECHNIQUES:
        assert f"│ {t} " in buf.getvalue()


def test_fold_breaks_after_a_separator_and_loses_nothing():
    path = LONG_IDS[0]
    lines = fold(path, 27).split("\n")
    assert "".join(lines) == path and all(len(line) <= 27 for line in lines)
    assert lines[1].endswith("/")  # "camera_left_batch_0/" whole on its line
    assert fold("mixup=1.0+dropout=0.5", 20) == "mixup=1.0+\ndropout=0.5"
    assert fold("x" * 45, 20) == "x" * 20 + "\n" + "x" * 20 + "\n" + "x" * 5
    assert fold("short", 20) == "short"


def test_a_value_that_rounds_to_zero_has_no_sign():
    assert pp(-3.7e-17) == "0.0" and pp(0.0004) == "0.0" and pp(-0.0004) == "0.0"
    assert pp(0.031) == "+3.1" and pp(-0.2) == "-20.0" and pp(float("nan")) == "–"
    assert pct(-3.7e-17) == "0.0%" and pct(-0.0004) == "0.0%" and pct(0.953) == "95.3%"
    assert num(-1e-9) == "0.000" and num(-0.0123) == "-0.012" and num(None) == "–"


def _compare_result(noisy: bool) -> SimpleNamespace:
    n = len(TECHNIQUES)
    table = pd.DataFrame({
        "technique": TECHNIQUES, "val_acc": np.linspace(0.5, 0.78, n), "val_acc_ci_low": np.linspace(0.4, 0.7, n),
        "val_acc_ci_high": np.linspace(0.6, 0.86, n), "delta_val_acc": [0.0, -0.257, -0.1, -0.203, 0.007, -3.7e-17],
        "p_value": [math.nan, 0.018, 0.008, 0.097, 0.68, 1.0], "train_acc": np.linspace(0.5, 0.8, n),
        "acc_gap": [0.032, -0.033, 0.09, 0.052, 0.03, -1e-17], "loss_gap": [0.064, 0.012, -0.049, 0.03, 0.063, -1e-9],
        "test_acc": np.linspace(0.45, 0.76, n), "model_epochs": [9] * n})
    if noisy:
        table["noisy_memorized"] = np.linspace(0.08, 0.14, n)
    return SimpleNamespace(defaults=[], dataset={"name": "digits", "n_train": 300, "n_test": 360}, table=table,
                           folds=3, repeats=1, model="mlp", epochs=3, label_noise=0.2 if noisy else 0.0,
                           recommended=TECHNIQUES[1], baseline="baseline", test_train_ratio=0.5, best=TECHNIQUES[1],
                           study_dir="runs/compare-digits-mlp-0123abcd")


@pytest.mark.parametrize("width", [80, 60])
@pytest.mark.parametrize("noisy", [False, True])
def test_compare_shows_every_column_with_long_technique_names(monkeypatch, width, noisy):
    console, buf = _console(width)
    monkeypatch.setattr(compare, "out", console)
    compare.render(_compare_result(noisy))
    text = buf.getvalue()
    shown = {head: body for table in parse_tables(text) for head, body in table}
    assert shown["technique"] == _squeeze("".join(t + (" ★" if k == 1 else "")
                                                  for k, t in enumerate(TECHNIQUES)))
    assert shown["Δvalacc(points)"] == "-25.7-10.0-20.3+0.70.0"  # the baseline's is empty; -3.7e-17 is 0.0
    assert shown["p"] == "0.0180.0080.0970.6801.000"
    assert shown["gapacc(points)"] == "+3.2-3.3+9.0+5.2+3.00.0"  # in points, as the notes say
    assert shown["gaploss"] == "0.0640.012-0.0490.0300.0630.000"
    assert ("noisylabelsmemorized" in shown) == noisy
    assert not re.search(r"-0\.0+%?(?![0-9])", text) and "%" not in shown["gapacc(points)"]  # no "-0.0"
    assert max(len(line) for line in text.splitlines()) <= width and "…" not in text


def _top_rows(n: int) -> list[dict]:
    return [{"id": LONG_IDS[k % len(LONG_IDS)], "given_label": k % 3, "predicted_label": (k + 1) % 3,
             "suggested_label": (k + 1) % 3, "suggestion_confidence": 0.9, "score": 0.9 - k / 20,
             "stderr": 0.01 * k, "flipped": k % 2 == 0} for k in range(n)]


@pytest.mark.parametrize("width", [80, 60])
def test_memorization_tables_show_ids_whole_and_say_when_cut(monkeypatch, width):
    console, buf = _console(width)
    monkeypatch.setattr(memorization, "out", console)
    dataset = {"classes": ["one", "two", "three"], "ids": "file path relative to imgs"}
    memorization._top({"top_memorized": _top_rows(10), "n_train": 48}, dataset, "most memorized · baseline",
                      "scores_baseline.csv")
    memorization._issues({"flagged": 12, "estimated_noise_rate": 0.1, "top": _top_rows(10)}, dataset,
                         "label issues · baseline", "scores_baseline.csv")
    text = buf.getvalue()
    top, issues = text.split("label(s) flagged")
    classes = dataset["classes"]
    assert_shown_whole(top, width, ["id", "given\nlabel", "predicted\n(held out)", "score", "±\nstderr", "flipped"],
                       [[r["id"], classes[r["given_label"]], classes[r["predicted_label"]], f"{r['score']:.3f}",
                         f"{r['stderr']:.3f}", "yes" if r["flipped"] else ""] for r in _top_rows(10)])
    assert_shown_whole(issues, width, ["id", "given", "suggested", "confidence", "flipped"],
                       [[r["id"], classes[r["given_label"]], classes[r["suggested_label"]], "90.0%",
                         "yes" if r["flipped"] else ""] for r in _top_rows(10)])
    flat = " ".join(text.split())
    assert "top 10 of 48 examples by score shown; all in scores_baseline.csv" in flat
    assert "top 10 of 12 flagged labels (surest first) shown; all in scores_baseline.csv" in flat


def test_no_note_when_every_row_is_shown(monkeypatch):
    console, buf = _console(80)
    monkeypatch.setattr(memorization, "out", console)
    memorization._issues({"flagged": 3, "estimated_noise_rate": 0.1, "top": _top_rows(3)},
                         {"classes": ["one", "two", "three"]}, "label issues", "scores_baseline.csv")
    assert "shown; all in" not in buf.getvalue()


def _long_named_images(root) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("zero", "one", "two"):
        folder = root / c / "session_2024_05_17_camera_left_batch"
        folder.mkdir(parents=True)
        for k in range(20):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"img_{341 + k:04d}_augmented_original_capture.png")


@pytest.mark.parametrize("columns", [80, 60])
def test_memorization_cli_with_long_file_names(tmp_path, columns):
    _long_named_images(tmp_path / "imgs")
    proc = run_cli("memorization", "--data", "imgs", "--epochs", "4", "--models", "24", "--label-noise", "0.1",
                   "--runs-dir", "runs", "--quiet", cwd=tmp_path, env={"COLUMNS": str(columns)})
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert max(len(line) for line in text.splitlines()) <= columns and "…" not in text
    top = text.split("most memorized · baseline")[1].split("stability:")[0]
    shown = {head: body for table in parse_tables(top) for head, body in table}
    assert {"id", "givenlabel", "predicted(heldout)", "score", "±stderr", "flipped"} <= set(shown)
    ids = {p.relative_to(tmp_path / "imgs").as_posix() for p in (tmp_path / "imgs").rglob("*.png")}
    assert sum(shown["id"].count(i) for i in ids) == 10  # ten ids, each whole once folded lines are joined
    assert "all in scores_baseline.csv" in " ".join(top.split())


@pytest.mark.parametrize("args,line", [
    (["diagnose", "--epochs", "abc"], "Error: --epochs expects a whole number, got 'abc'"),
    (["compare", "--label-noise=x"], "Error: --label-noise expects a number, got 'x'"),
    (["memorization", "--models", "2.5"], "Error: --models expects a whole number, got '2.5'"),
    (["diagnose", "--bogus"], "Error: No such option: --bogus (see 'rotelab diagnose --help')"),
    (["diagnose", "--epochs"], "Error: Option '--epochs' requires an argument (see 'rotelab diagnose --help')"),
    (["nosuch"], "Error: No such command 'nosuch' (see 'rotelab --help')"),
])
def test_a_usage_error_is_one_line_exit_2(capsys, args, line):
    code, out, err = run_main(args, capsys)
    assert code == 2 and out == ""
    assert err.splitlines() == [line]


def test_help_and_version_still_exit_0(capsys):
    code, out, _ = run_main(["diagnose", "--help"], capsys)
    assert code == 0 and "--epochs" in out
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0 and out.startswith("rotelab ")
