"""``modelreg match SOURCE``: which registry entry a model ID, directory or config.json belongs to.

Matching runs on the transformers config class when transformers knows the
model_type (the config the server will see, defaults filled in), so this command
pays for importing transformers; ``--explain`` shows, for every entry of the same
model_type, each pattern attribute with its expected and actual value.
"""

from __future__ import annotations

import argparse
from typing import Any

from registry.commands import add_config_argument, emit
from registry.errors import MatchError
from registry.model_matcher import CandidateReport, get_attribute
from registry.model_registry import MatchResult, get_model_registry
from registry.output import table, to_json


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("source", metavar="SOURCE", help="HF model ID, model directory or config.json path")
    parser.add_argument(
        "--explain", action="store_true", help="show why each same-model_type entry matched or not"
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="let transformers run the model's own code"
    )
    parser.add_argument("--revision", metavar="R", help="HF revision (branch, tag or commit) of the model ID")
    add_config_argument(parser)


def run(args: argparse.Namespace) -> int:
    registry = get_model_registry(args.config)
    options = {"trust_remote_code": args.trust_remote_code, "revision": args.revision}
    if args.explain:
        result = registry.match_or_none(args.source, **options)
        reports = registry.explain(args.source, **options)
    else:
        result = registry.match(args.source, **options)
        reports = None
    model_type = get_attribute(result.hf_config, "model_type")
    model = registry.get_model_config(result.name) if result.name else None
    if args.format == "json":
        data: dict[str, Any] = {
            "source": args.source,
            "origin": result.origin,
            "model_id": result.model_id,
            "model_type": model_type if isinstance(model_type, str) else None,
            "match": result.name,
            "model_config": model.to_dict() if model else None,
        }
        if reports is not None:
            data["candidates"] = [r.to_dict() for r in reports]
        emit(to_json(data))
    else:
        text = _text(args.source, result, model, reports)
        if text:
            emit(text)
    if result.name is None:
        raise _no_match(args.source, model_type, registry.config_path, explained=args.explain)
    return 0


def _no_match(source: str, model_type: Any, path: str, *, explained: bool) -> MatchError:
    hint = "" if explained else f"; run `modelreg match {source} --explain` to see why"
    if not isinstance(model_type, str):
        return MatchError(f"{source}: the config has no model_type, so no registry entry can match it")
    return MatchError(f"{source}: no entry of model_type {model_type!r} in {path} matches this config{hint}")


def _text(source: str, result: MatchResult, model: Any, reports: list[CandidateReport] | None) -> str:
    lines = []
    if model is not None:
        sizes = ", ".join(str(tp) for tp in model.tp_sizes) or "none"
        devices = ", ".join(str(tp) for tp in sorted(model.device_configs)) or "none"
        lines += [
            result.name,
            f"  model_type:     {model.architecture.model_type}",
            f"  pattern fields: {model.architecture.field_count}",
            f"  tp sizes:       {sizes} (device configs: {devices})",
            f"  config from:    {result.origin}",
            f"  entry:          {model.source}",
        ]
    for report in reports or ():
        verdict = "CHOSEN" if report.chosen else ("matches" if report.matched else "no match")
        lines += ["", f"{report.name}: {verdict} ({report.field_count} fields)"]
        rows = [
            {
                "attribute": c.key_path,
                "expected": _show(c.expected),
                "actual": _show(c.actual) if c.present else "<absent>",
                "result": "ok" if c.ok else "DIFFERS",
            }
            for c in report.checks
        ]
        lines += ["  " + line for line in table(rows).splitlines()]
    if reports == []:
        lines.append(f"{source}: no registry entry has this config's model_type")
    return "\n".join(lines)


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 48 else text[:45] + "..."
