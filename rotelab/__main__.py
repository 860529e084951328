"""``python -m rotelab`` is the ``rotelab`` command."""

from rotelab.cli import main

main()
