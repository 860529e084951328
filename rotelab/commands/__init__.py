"""One module per CLI command; each defines ``command``. ``rotelab.cli`` registers them from
its ``COMMANDS`` table, so no command module imports the CLI."""
