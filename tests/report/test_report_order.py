"""A runs directory's studies appear in the order a reader asks: diagnose, compare, sweep, memorization."""

from __future__ import annotations

from rotelab.report.page import RESULT_FILE, STUDY_FILE, find_studies


def test_runs_directory_is_read_in_question_order(tmp_path):
    names = ["memorization-digits-mlp-1", "compare-digits-mlp-2", "sweep-digits-mlp-3", "diagnose-mnist1d-mlp-4",
             "compare-digits-mlp-0", "unfinished-5"]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / STUDY_FILE).write_text("{}")
        if name != "unfinished-5":
            (tmp_path / name / RESULT_FILE).write_text("{}")
    assert [p.name for p in find_studies([tmp_path])] == [
        "diagnose-mnist1d-mlp-4", "compare-digits-mlp-0", "compare-digits-mlp-2", "sweep-digits-mlp-3",
        "memorization-digits-mlp-1"]
    # named directly: the order given
    given = [tmp_path / "sweep-digits-mlp-3", tmp_path / "diagnose-mnist1d-mlp-4"]
    assert find_studies(given) == given
