"""One module per CLI command; importing this package registers them on ``rotelab.cli.app``."""

from rotelab.commands import compare, datasets, demo, diagnose, memorization, report, sweep  # noqa: F401
