"""The ``modelreg`` command line: parse, call the library, render.

Only the chosen command's module is imported, so ``modelreg models`` never pays
for transformers, NIXL or the configurators it does not use. Each command module
exposes ``add_arguments(parser, command)`` and ``run(args) -> int``; ``args.command``
names the command (one module may serve several).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from registry.errors import ModelRegError

# name -> (module, one-line help). This is the one place that joins registry and
# configurators; the modules themselves stay on their own side.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("registry.commands.models", "list every registered model, its model_type and TP sizes"),
    "match": ("registry.commands.match", "find the registry entry for a model ID, directory or config.json"),
    "validate": ("registry.commands.validate", "check a model_configs.yaml and report every problem"),
    "schema": ("registry.commands.schema", "print the JSON Schema of model_configs.yaml"),
    "configure": ("configurators.commands.configure", "show or emit what a deployment needs"),
    "exec": ("configurators.commands.exec_", "configure, then launch an inference server"),
    "kvcache": ("configurators.commands.plan", "KV-cache size and batch for a model and config"),
    "iosize": ("configurators.commands.plan", "per-GPU IO size of one KV page"),
    "plan": ("configurators.commands.plan", "the nixlbench command for a KV-transfer plan"),
    "profile": ("configurators.commands.profile", "run the planned KV transfer through NIXL"),
    "sweep": ("configurators.commands.sweep", "enumerate deployment layouts from an experiment YAML"),
}


def _spellings(names: tuple[str, ...]) -> list[str]:
    spelled = list(names)
    for name in names:
        if name.startswith("--"):
            for alt in ("--" + name[2:].replace("_", "-"), "--" + name[2:].replace("-", "_")):
                if alt not in spelled:
                    spelled.append(alt)
    return spelled


def _dual(add):
    def add_argument(*names: str, **kwargs):
        return add(*_spellings(names), **kwargs)

    return add_argument


class FlagParser(argparse.ArgumentParser):
    """An ArgumentParser where every long flag accepts both spellings.

    The source documents spell flags ``--num_requests`` and ``--etcd-endpoints``;
    users type either, so ``--num-requests`` and ``--etcd_endpoints`` work too.
    """

    def add_argument(self, *names: str, **kwargs):  # type: ignore[override]
        return super().add_argument(*_spellings(names), **kwargs)

    def add_argument_group(self, *args, **kwargs):  # type: ignore[override]
        group = super().add_argument_group(*args, **kwargs)
        group.add_argument = _dual(group.add_argument)  # type: ignore[method-assign]
        return group

    def add_mutually_exclusive_group(self, **kwargs):  # type: ignore[override]
        group = super().add_mutually_exclusive_group(**kwargs)
        group.add_argument = _dual(group.add_argument)  # type: ignore[method-assign]
        return group


def _top_parser() -> FlagParser:
    parser = FlagParser(
        prog="modelreg",
        description="A declarative registry that knows how to deploy LLMs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()),
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="see below")
    return parser


def build_parser(command: str) -> FlagParser:
    """The parser of one command (imports that command's module only)."""
    module_name, text = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = FlagParser(prog=f"modelreg {command}", description=text)
    parser.set_defaults(_module=module, command=command)
    module.add_arguments(parser, command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] in ("-h", "--help") or args_list[0] not in COMMANDS:
        top = _top_parser()
        if not args_list:
            top.print_help()
            return 2
        top.parse_args(args_list[:1])  # prints help, or "invalid choice" and exits 2
        return 0
    try:
        parser = build_parser(args_list[0])
        args = parser.parse_args(args_list[1:])
        return int(args._module.run(args) or 0)
    except ModelRegError as error:
        print(f"modelreg {args_list[0]}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"modelreg {args_list[0]}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
