"""CLI command modules of the registry side (see ``registry.cli.COMMANDS``)."""
