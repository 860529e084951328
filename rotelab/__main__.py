"""``python -m rotelab``: the same as the ``rotelab`` command."""

from rotelab.entry import main

main()
