"""``modelreg schema``: the JSON Schema of model_configs.yaml, for editors and CI linters."""

from __future__ import annotations

import argparse

from registry.commands import emit
from registry.model_registry import SCHEMA_PATH


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--output", metavar="FILE", help="write to FILE (atomically) instead of stdout")


def run(args: argparse.Namespace) -> int:
    emit(SCHEMA_PATH.read_text(encoding="utf-8"), args.output)
    return 0
