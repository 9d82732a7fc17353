"""``modelreg kvcache | iosize | plan``: KV-cache size, IO size and the nixlbench command.

The three commands share KVBench's flags: a model (HF model ID, directory,
config.json, or a KVBench architecture YAML), one or more strategy / runtime /
system YAMLs, layout overrides and the nixlbench flags. A bad file among many
is reported (exit 2 at the end) while the others still print.
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from configurators.nixlbench import FLAG_DEFAULTS, NixlbenchArgs, nixlbench_args
from configurators.transfer import (
    ACCESS_PATTERNS,
    COMPAT_MODES,
    SECTIONS,
    TRANSFER_FILE_SCHEMA,
    SpecError,
    TransferPlan,
    plan_transfer,
    spec_from_sections,
)
from registry.errors import ConfigError, ModelRegError, UsageError
from registry.kvbench_model import KVBenchModel, is_kvbench_model
from registry.model_config import TransferSpec
from registry.output import FORMATS, to_csv, to_json, write_atomic

# CLI override flag -> TransferSpec field (KVBench's add_cli_args).
OVERRIDES = {
    "tp": "tp_size",
    "pp": "pp_size",
    "isl": "isl",
    "osl": "osl",
    "num_requests": "num_requests",
    "page_size": "page_size",
    "access_pattern": "access_pattern",
}
SEPARATOR = "=" * 80
# Flags handled apart from the plain nixlbench pass-through.
_SPECIAL = ("backend",)


@dataclass(frozen=True)
class PlannedRun:
    """One config file's outcome: a plan and its nixlbench flags, or the error that stopped it."""

    config_file: str
    plan: TransferPlan | None = None
    nixlbench: NixlbenchArgs | None = None
    error: str | None = None


@dataclass(frozen=True)
class ModelSource:
    """What ``--model`` named: a HF config dict or a KVBench architecture."""

    name: str
    config: Any


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags ``kvcache``, ``iosize``, ``plan`` and ``profile`` share."""
    common = parser.add_argument_group("model and configs")
    common.add_argument("--model", help="HF model ID, model dir, config.json, or KVBench architecture YAML")
    common.add_argument("--model_config", help="a strategy/runtime/system YAML")
    common.add_argument("--model_configs", action="append", help="glob of strategy/runtime/system YAMLs")
    common.add_argument(
        "--compat",
        choices=COMPAT_MODES,
        help="kvbench: KVBench's arithmetic (default for KVBench YAMLs); modelreg: exact geometry",
    )
    overrides = parser.add_argument_group("overrides of the config files")
    overrides.add_argument("--tp", type=int, help="tensor parallelism size")
    overrides.add_argument("--pp", type=int, help="pipeline parallelism size")
    overrides.add_argument("--isl", type=int, help="input sequence length")
    overrides.add_argument("--osl", type=int, help="output sequence length")
    overrides.add_argument("--num_requests", type=int, help="number of requests")
    overrides.add_argument("--page_size", type=int, help="tokens per KV page")
    overrides.add_argument("--access_pattern", choices=ACCESS_PATTERNS, help="block or layer")
    bench = parser.add_argument_group("nixlbench")
    bench.add_argument("--source", choices=("file", "memory", "gpu"), help="where the KV is read from")
    bench.add_argument("--destination", choices=("file", "memory", "gpu"), help="where the KV is written to")
    bench.add_argument(
        "--backend", help="UCX, UCX_MO, GDS, GDS_MT, POSIX, HF3FS, OBJ, GPUNETIO, Mooncake (UCX)"
    )
    for field in fields(NixlbenchArgs):
        if field.name in _SPECIAL:
            continue
        names = ["--" + field.name]
        if field.name == "filepath":
            names.append("--gds_filepath")
        if field.name == "etcd_endpoints":
            names = ["--etcd-endpoints", "--etcd-endpoint"]
        if field.type in ("bool", bool):
            bench.add_argument(
                *names, dest=field.name, action="store_true", default=None, help="(default: off)"
            )
        else:
            kind = int if field.type in ("int", int) else str
            bench.add_argument(*names, dest=field.name, type=kind, help=f"(default: {field.default!r})")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    add_plan_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--output", help="write the output to this file instead of stdout")


def load_model(value: str | None) -> ModelSource:
    """Resolve ``--model``: a KVBench architecture YAML, or anything a HF config comes from."""
    if not value:
        raise UsageError("--model is required (a HF model ID, config.json, or KVBench architecture YAML)")
    if value.endswith((".yaml", ".yml")):
        from registry.loader import load_yaml_document

        document = load_yaml_document(value)
        if not is_kvbench_model(document.data):
            raise ConfigError(
                [document.at((), "--model: expected a KVBench architecture (model_name, num_layers)")]
            )
        model = KVBenchModel.from_mapping(document.data, value, document.location)
        return ModelSource(model.model_name, model)
    from registry.hf_config import load_config_dict

    source = load_config_dict(value)
    return ModelSource(source.model_id or value, source.data)


def config_files(args: argparse.Namespace) -> tuple[list[str], list[PlannedRun]]:
    """``--model_config`` plus every ``--model_configs`` glob, in order, without duplicates.

    KVBench keeps architectures and configs side by side in ``examples/``, so a
    glob skips architecture YAMLs; a glob that matches nothing is an error.
    """
    files: list[str] = [args.model_config] if args.model_config else []
    errors: list[PlannedRun] = []
    for pattern in args.model_configs or ():
        matched = sorted(glob.glob(pattern))
        if not matched:
            errors.append(PlannedRun(pattern, error=f"--model_configs {pattern!r} matched no files"))
        files.extend(path for path in matched if not _is_architecture(path))
    if not files and not errors:
        raise UsageError("either --model_config or --model_configs is required")
    return list(dict.fromkeys(files)), errors


def _is_architecture(path: str) -> bool:
    from registry.loader import load_yaml_document

    try:
        return is_kvbench_model(load_yaml_document(path).data)
    except ModelRegError:
        return False  # reported when the file is planned


def plans_from_args(args: argparse.Namespace) -> list[PlannedRun]:
    """One PlannedRun per config file; a file's error does not stop the others."""
    model = load_model(args.model)
    files, runs = config_files(args)
    for path in files:
        try:
            runs.append(_plan_file(path, model, args))
        except ModelRegError as error:
            runs.append(PlannedRun(path, error=str(error)))
    return runs


def _plan_file(path: str, model: ModelSource, args: argparse.Namespace) -> PlannedRun:
    from registry.loader import load_yaml_document, schema_errors

    if not Path(path).is_file():
        raise ConfigError([f"{path}: config file not found"])
    document = load_yaml_document(path)
    data = document.data if document.data is not None else {}
    if not isinstance(data, Mapping):
        raise ConfigError([document.at((), "expected a mapping with strategy / runtime / system sections")])
    problems = schema_errors(document, TRANSFER_FILE_SCHEMA)
    if problems:
        raise ConfigError(problems)
    spec = _with_overrides(spec_from_sections(data), args)
    try:
        plan = plan_transfer(model.config, spec, compat=args.compat, model_name=model.name, config_file=path)
        # kvcache / iosize need no nixlbench flags, so a transfer-only mistake does not stop them.
        sizing_only = getattr(args, "command", None) in ("kvcache", "iosize")
        bench = None if sizing_only else _nixlbench_for(plan, args)
    except SpecError as error:
        flag = next((f for f, name in OVERRIDES.items() if name == error.field), None)
        if flag is not None and getattr(args, flag) is not None:
            raise ConfigError([f"{path}: --{flag}: {error}"]) from None
        section = next((s for s, names in SECTIONS.items() if error.field in names), None)
        if section and error.field in (data.get(section) or {}):
            raise ConfigError([document.at((section, error.field), str(error))]) from None
        raise ConfigError([f"{path}: {error}"]) from None
    except UsageError as error:
        raise ConfigError([f"{path}: {error}"]) from None
    return PlannedRun(path, plan, bench)


def _with_overrides(spec: TransferSpec, args: argparse.Namespace) -> TransferSpec:
    changes = {
        name: getattr(args, flag) for flag, name in OVERRIDES.items() if getattr(args, flag) is not None
    }
    return replace(spec, **changes)


def _nixlbench_for(plan: TransferPlan, args: argparse.Namespace) -> NixlbenchArgs:
    """Flags: the CLI's over the config file's ``nixlbench`` / ``system`` settings."""
    settings = dict(plan.nixlbench)
    for name in ("backend", "source", "destination", *FLAG_DEFAULTS):
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    backend = settings.pop("backend", None) or "UCX"
    source, destination = settings.pop("source", None), settings.pop("destination", None)
    return nixlbench_args(plan, backend=backend, source=source, destination=destination, **settings)


# ---------------------------------------------------------------- rendering


def plan_record(run: PlannedRun) -> dict[str, Any]:
    """All nixlbench flags plus the config's fields, prefixed as KVBench's CSV prefixes them."""
    record: dict[str, Any] = run.nixlbench.to_dict()
    record["config_file"] = run.config_file
    record["model"] = run.plan.model
    for section, values in run.plan.sections().items():
        for key, value in values.items():
            record[f"model_{section}_{key}"] = value
    return record


def plan_text(run: PlannedRun) -> str:
    plan = run.plan
    return "\n".join(
        [
            SEPARATOR,
            f"Model Config: {run.config_file}",
            f"ISL: {plan.isl} tokens",
            f"Page Size: {plan.page_size}",
            f"Requests: {plan.num_requests}",
            f"TP: {plan.tp_size}",
            f"PP: {plan.pp_size}",
            SEPARATOR,
            run.nixlbench.text(),
            "",
            "",
        ]
    )


def format_bytes(size: float) -> str:
    """KVBench's rendering: two decimals in the largest binary unit (``1.12 MB``)."""
    power = 0 if size <= 0 else min(4, math.floor(math.log(size, 1024)))
    return f"{round(size / 1024**power, 2)} {['B', 'KB', 'MB', 'GB', 'TB'][power]}"


def kvcache_record(run: PlannedRun) -> dict[str, Any]:
    plan = run.plan.to_dict()
    plan.pop("nixlbench")
    return plan


def kvcache_text(run: PlannedRun) -> str:
    plan = run.plan
    rows = [
        ("Model", plan.model),
        ("Input Sequence Length", plan.isl),
        ("Batch Size", plan.batch_size),
        ("IO Size", format_bytes(plan.io_size)),
        ("KV Cache Size Per Token", format_bytes(plan.kv_bytes_per_token)),
        ("Attention", f"{plan.attention} ({plan.compat})"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:{width}}: {value}" for label, value in rows)


def run(args: argparse.Namespace) -> int:
    runs = plans_from_args(args)
    good = [r for r in runs if r.error is None]
    if args.command == "plan":
        records = [plan_record(r) for r in good]
        text = "".join(plan_text(r) for r in good)
        columns = sorted({key for record in records for key in record})
    elif args.command == "kvcache":
        records = [kvcache_record(r) for r in good]
        text = "\n\n".join(
            (f"Model Config: {r.config_file}\n" if len(good) > 1 else "") + kvcache_text(r) for r in good
        )
        columns = None
    else:
        records = [
            {
                "config_file": r.config_file,
                "model": r.plan.model,
                "io_size_per_gpu": r.plan.io_size_per_token,
                "page_size": r.plan.page_size,
                "io_size_per_page": r.plan.io_size,
            }
            for r in good
        ]
        text = "\n".join(
            (f"Model Config: {rec['config_file']}\n" if len(good) > 1 else "")
            + f"IO Size per GPU: {rec['io_size_per_gpu']}"
            for rec in records
        )
        columns = None
    if args.format == "json":
        output = to_json(records) + "\n"
    elif args.format == "csv":
        output = to_csv(records, columns)
    else:
        output = text + ("\n" if text and not text.endswith("\n") else "")
    if args.output:
        write_atomic(args.output, output)
    else:
        sys.stdout.write(output)
    for failed in runs:
        if failed.error is not None:
            print(f"modelreg {args.command}: error: {failed.error}", file=sys.stderr)
    return 2 if len(good) < len(runs) else 0
