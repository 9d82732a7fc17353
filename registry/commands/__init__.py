"""CLI command modules of the registry side (see ``registry.cli.COMMANDS``).

Shared flags live here so every registry command spells them the same way.
"""

from __future__ import annotations

import argparse
import sys

from registry.output import write_atomic


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="the registry file (default: $MODELREG_CONFIG_FILE, else the packaged model_configs.yaml)",
    )


def emit(text: str, output: str | None = None) -> None:
    """Print ``text``, or write it atomically to ``output``."""
    if not text.endswith("\n"):
        text += "\n"
    if output:
        write_atomic(output, text)
    else:
        sys.stdout.write(text)
