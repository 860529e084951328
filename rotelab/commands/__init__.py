"""One module per CLI command; importing this package registers them on ``rotelab.cli.app``."""

from rotelab.commands import compare, datasets, diagnose, report, sweep  # noqa: F401
