"""The report in a real headless Chromium: loads without console errors, every figure drawn,
user strings escaped. Also the report's bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import rotelab
from rotelab.errors import StoreError
from rotelab.report.page import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = "<script>alert(1)</script>"
EVIL_FILE = 'evil"><img src=x onerror=alert(2)>.npz'  # a file name cannot hold the "/" of </script>


def open_in_chromium(html: Path, screenshot: Path) -> dict:
    """Load the page from disk; return console errors, dialogs, image sizes and the page text."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors, dialogs, requests = [], [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(html.as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.naturalWidth, e.naturalHeight])")
        n_figures = page.eval_on_selector_all("figure.fig", "els => els.length")
        text = page.inner_text("body")
        page.click("table.sortable th:nth-child(2)")  # the sort script runs without error
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return {"errors": errors, "dialogs": dialogs, "images": images, "figures": n_figures, "text": text,
            "requests": requests}


@pytest.fixture
def evil_study(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (60, 8)), rng.normal(1.5, 1, (60, 8))]).astype(np.float32)
    y = np.repeat([0, 1], 60)
    data = tmp_path / EVIL_FILE
    np.savez(data, x=x, y=y, classes=np.array([EVIL, "<b>bold</b> & co"]))
    r = rotelab.diagnose(str(data), "mlp", epochs=6, seeds=2, runs_dir=tmp_path / "runs")
    return Path(r.study_dir)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_report_loads_in_chromium_with_every_figure(evil_study, tmp_path):
    page = build_report([evil_study])
    seen = open_in_chromium(page, tmp_path / "report.png")
    assert seen["errors"] == [] and seen["dialogs"] == []
    assert seen["figures"] >= 1 and len(seen["images"]) == seen["figures"]
    assert all(w > 100 and h > 100 for w, h in seen["images"])
    assert EVIL in seen["text"] and "<b>bold</b> & co" in seen["text"]  # shown as text, not run
    assert all(u.startswith(("file:", "data:")) for u in seen["requests"])  # no network
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_user_strings_are_escaped_in_the_html(evil_study):
    html = build_report([evil_study]).read_text()
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "<b>bold</b>" not in html
    # the page says what an id in its tables points to
    assert "<dt>example ids</dt><dd>0-based index into x of evil" in html


def test_runs_directory_collects_finished_studies(evil_study):
    runs = evil_study.parent
    (runs / "half-done").mkdir()
    (runs / "half-done" / "study.json").write_text("{}")
    page = build_report([runs])
    assert page == runs / "report.html" and page.read_text().count('<section class="study"') == 1


def test_a_damaged_study_is_left_out_of_a_runs_report_with_a_warning(evil_study):
    runs = evil_study.parent
    other = Path(rotelab.diagnose("synthetic", "mlp", epochs=2, seeds=1, runs_dir=runs).study_dir)
    (other / "result.json").write_text('{"cut off')
    with pytest.warns(rotelab.errors.RotelabWarning, match=r"result.json: unreadable .*rerun the study.*left out"):
        page = build_report([runs])
    assert evil_study.name in page.read_text() and other.name not in page.read_text()
    with pytest.raises(StoreError, match=r"result.json: unreadable .*; rerun the study"):
        build_report([other])  # named alone, it is an error


def test_studies_of_one_kind_on_the_same_data_have_headings_that_tell_them_apart(tmp_path):
    runs = tmp_path / "runs"
    common = dict(folds=2, epochs=2, batch_size=32, width=8, runs_dir=runs)
    a = rotelab.compare("synthetic", "mlp", techniques="baseline,dropout", **common)
    b = rotelab.compare("synthetic", "mlp", techniques="baseline,l2=0.001", label_noise=0.1, **common)
    c = rotelab.compare("synthetic", "mlp", techniques="baseline,l2=0.001", label_noise=0.1, seed=1, **common)
    html = build_report([runs]).read_text()
    assert "<h2>compare · synthetic · mlp · baseline, dropout=0.5</h2>" in html
    for r in (b, c):  # the same settings but the seed: the folder's name tells them apart
        name = Path(r.study_dir).name
        assert f"<h2>compare · synthetic · mlp · baseline, l2=0.001 · 10% label noise ({name})</h2>" in html
    assert Path(a.study_dir).name not in html.split("<h2>")[1].split("</h2>")[0]


def test_missing_files_and_other_versions_are_one_clear_error(evil_study, tmp_path, cli):
    (evil_study / "result.json").unlink()
    with pytest.raises(StoreError, match="missing result.json"):
        build_report([evil_study])
    study = json.loads((evil_study / "study.json").read_text())
    study["format_version"] = 0
    (evil_study / "study.json").write_text(json.dumps(study))
    proc = cli("report", str(evil_study))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "another version of rotelab" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("report", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "no such study directory" in proc.stderr


def test_a_sweep_with_one_curve_gets_a_report(tmp_path):
    """A sweep of sizes only (no widths) has one figure; its section must not ask for the other."""
    import rotelab

    r = rotelab.sweep("synthetic", "mlp", train_sizes="60,all", widths=None, folds=2, epochs=2, batch_size=32,
                      runs_dir=tmp_path)
    assert r.widths is None and set(r.figures) == {"sizes"}
    html = build_report([r.study_dir], tmp_path / "one_curve.html").read_text()
    assert "Gap against training-set size" in html and "Gap against model width" not in html


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_memorization_with_techniques_shows_labels_and_the_ledger_in_chromium(tmp_path):
    """The label-issue gallery (given → suggested) and the ledger section render in a browser,
    with a table of contents that links to them; the key column of a wide table stays in view."""
    from rotelab.data.builtin import synthetic
    from rotelab.data.noise import flip_labels

    ds = flip_labels(synthetic(n_train=120, n_test=40, n_features=8, n_classes=3, seed=4), 0.1, seed=0)
    m = rotelab.memorization(ds, "mlp", models=24, techniques="baseline,dropout", epochs=20, width=32,
                             batch_size=32, runs_dir=tmp_path / "runs", device="cpu")
    assert m.ledger["counts"] and (Path(m.study_dir) / "ledger.csv").is_file()
    page = build_report([m.study_dir], tmp_path / "mem.html")
    seen = open_in_chromium(page, tmp_path / "mem.png")
    assert seen["errors"] == [] and seen["figures"] >= 10
    assert all(w > 50 and h > 50 for w, h in seen["images"])  # every picture decoded (pairs hold two)
    text = seen["text"]
    for heading in ("Contents", "Label issues", "Ledger: which examples each technique stops memorizing",
                    "likely mislabeled", "RMIA offline"):
        assert heading in text, heading
    assert "→ suggested" in text or m.summaries["baseline"]["label_issues"]["flagged"] == 0
    html = page.read_text()
    assert 'href="#' + Path(m.study_dir).name + '-' in html  # the contents link to the section's headings
