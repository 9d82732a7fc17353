"""CLI command modules of the configurators side (see ``registry.cli.COMMANDS``)."""
