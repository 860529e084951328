"""The command a study records (the report's "Reproduce with"): quoted for a shell, without
the options that only change what is printed."""

from __future__ import annotations

import shlex
import sys

from rotelab.context import cli_command


def test_the_recorded_command_is_shell_quoted_and_drops_print_only_options(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/x/.venv/bin/rotelab", "compare", "--data", "my scans/", "-q",
                                      "--techniques", "baseline,dropout", "--json"])
    cmd = cli_command("compare")
    assert cmd == "rotelab compare --data 'my scans/' --techniques baseline,dropout"
    assert shlex.split(cmd)[3] == "my scans/"


def test_no_command_is_recorded_for_another_program_or_kind(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/x/bin/python", "my_script.py", "compare"])
    assert cli_command("compare") is None
    monkeypatch.setattr(sys, "argv", ["/x/bin/rotelab", "demo"])
    assert cli_command("compare") is None
