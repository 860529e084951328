"""rotelab."""
