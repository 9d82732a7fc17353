"""``modelreg validate FILE...``: every problem of every file, one line each.

All problems are printed, not just the first, so that a file with ten mistakes
is fixed in one edit; the exit code is 2 when any file has one.
"""

from __future__ import annotations

import argparse
import sys

from registry.commands import add_config_argument
from registry.errors import ConfigError
from registry.model_registry import default_config_path, load_registry_file


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "files", nargs="*", metavar="FILE", help="registry files (default: the --config file)"
    )
    add_config_argument(parser)


def run(args: argparse.Namespace) -> int:
    files = args.files or [args.config or str(default_config_path())]
    failed = 0
    for name in files:
        try:
            snapshot = load_registry_file(name)
        except ConfigError as error:
            failed += 1
            for problem in error.problems:
                print(problem, file=sys.stderr)
            continue
        count = len(snapshot.models)
        print(f"{name}: OK: {count} model{'' if count == 1 else 's'}")
    if failed:
        print(f"modelreg validate: {failed} of {len(files)} file(s) have problems", file=sys.stderr)
        return ConfigError.exit_code
    return 0
