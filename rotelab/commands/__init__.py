"""One module per CLI command; importing this package registers them on ``rotelab.cli.app``."""

from rotelab.commands import datasets, diagnose, report  # noqa: F401
