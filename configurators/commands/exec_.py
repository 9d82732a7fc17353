"""``modelreg exec [--backend B] [--dry-run] -- <server command>``: configure, then become the server.

The process replaces itself with the server (``os.execvpe``, argv list, no
shell), so signals reach the server directly and its exit code is the exit
code. The summary goes to stderr; stdout stays the server's.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from configurators.commands.configure import add_registry_flags
from configurators.hooks import prepare_launch
from registry.errors import UsageError
from registry.model_config import BACKENDS
from registry.output import to_json


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "--backend", choices=BACKENDS, help="inference engine (default: read from the server command)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the final argv and env instead of running"
    )
    add_registry_flags(parser)
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="--dry-run output format (default: text)"
    )
    parser.add_argument(
        "server", nargs=argparse.REMAINDER, metavar="-- SERVER ...", help="the server command"
    )


def run(args: argparse.Namespace) -> int:
    argv = list(args.server)
    if argv and argv[0] == "--":
        argv = argv[1:]
    launch = prepare_launch(
        argv,
        backend=args.backend,
        config_path=args.config,
        trust_remote_code=args.trust_remote_code,
        strict=True if args.strict else None,
    )
    if args.dry_run:
        if args.format == "json":
            data = {"argv": launch.argv, "env": launch.added_env, "summary": launch.summary.to_dict()}
            sys.stdout.write(to_json(data))
        else:
            print(launch.summary.format_log_message(), file=sys.stderr)
            for key, value in launch.added_env.items():
                print(f"export {key}={shlex.quote(value)}")
            print(shlex.join(launch.argv))
        return 0
    print(launch.summary.format_log_message(), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(launch.argv[0], launch.argv, launch.env)
    except OSError as error:
        raise UsageError(f"cannot run the server command {launch.argv[0]!r}: {error.strerror}") from None
    return 0  # pragma: no cover - execvpe does not return
