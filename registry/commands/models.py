"""``modelreg models``: every registered model, its model_type and TP sizes.

This is the command people run first, so it stays on the fast path: no
transformers, no jsonschema (the quick check validates a healthy file).
"""

from __future__ import annotations

import argparse
from typing import Any

from registry.commands import add_config_argument, emit
from registry.model_registry import get_model_registry
from registry.output import FORMATS, table, to_csv, to_json

COLUMNS = ("name", "model_type", "tp_sizes", "device_configs", "patterns", "configurator")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--output", metavar="FILE", help="write to FILE (atomically) instead of stdout")
    add_config_argument(parser)


def rows(registry: Any) -> list[dict[str, Any]]:
    out = []
    for name in registry.list_models():
        model = registry.get_model_config(name)
        out.append(
            {
                "name": name,
                "model_type": model.architecture.model_type,
                "tp_sizes": list(model.tp_sizes),
                "device_configs": sorted(model.device_configs),
                "patterns": model.architecture.field_count,
                "configurator": model.configurator or "default",
            }
        )
    return out


def run(args: argparse.Namespace) -> int:
    registry = get_model_registry(args.config)
    data = rows(registry)
    if args.format == "json":
        text = to_json(data)
    elif args.format == "csv":
        text = to_csv(data, COLUMNS)
    else:
        text = table(data, COLUMNS) + f"\n\n{len(data)} models in {registry.config_path}"
    emit(text, args.output)
    return 0
