"""``modelreg configure MODEL --tp N --backend B``: what a deployment needs, applied to nothing.

The environment of this process stands in for the user's shell: a variable
already set there is reported as the user's (⚠), exactly as it would be at
server startup. Nothing here changes the caller's environment; ``--format env``
prints ``export`` lines for the caller to ``eval``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

from configurators.hooks import configurator_for, run_configurator, server_flags
from configurators.summary import APPLIED, REPLACED, ConfigurationSummary
from configurators.targets import WARMUP_MINIMUMS, EngineSettings
from registry.errors import ModelRegError, UsageError
from registry.model_config import BACKENDS
from registry.output import to_json, write_atomic

FORMATS = ("text", "json", "env")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("model", metavar="MODEL", help="model ID, model directory or config.json")
    parser.add_argument(
        "--tp",
        "--tp_size",
        dest="tp",
        type=int,
        metavar="N",
        help="tensor-parallel size (default: the entry's only one)",
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default="vllm", help="inference engine (default: vllm)"
    )
    parser.add_argument("--max_model_len", type=int, metavar="N", help="requested maximum model length")
    parser.add_argument(
        "--max_num_seqs", type=int, metavar="N", help="requested maximum concurrent sequences"
    )
    parser.add_argument(
        "--warmup_shapes",
        nargs="+",
        metavar="P,N,B",
        help="static batching shapes prompt_len,new_tokens,batch_size (instead of continuous batching)",
    )
    add_registry_flags(parser)
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--output", metavar="FILE", help="write the output to FILE instead of stdout")


def add_registry_flags(parser: argparse.ArgumentParser) -> None:
    """The flags ``configure`` and ``exec`` share: which registry, and how strictly to apply it."""
    parser.add_argument(
        "--strict",
        action="store_true",
        help="a conflict or unsupported runtime is an error (as MODELREG_REQUIRE_KNOWN_CONFIG=1)",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="registry file (default: MODELREG_CONFIG_FILE or the packaged one)"
    )
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow the model's own config code to run"
    )


def run(args: argparse.Namespace) -> int:
    shapes = parse_warmup_shapes(args.warmup_shapes or ())
    for flag, value in (
        ("--tp", args.tp),
        ("--max_model_len", args.max_model_len),
        ("--max_num_seqs", args.max_num_seqs),
    ):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be a positive integer, found {value}")
    configurator, hf_config = configurator_for(args.model, args.config, args.trust_remote_code)
    tp = args.tp if args.tp is not None else only_tp_size(configurator.model_config)
    target = EngineSettings(
        backend=args.backend,
        tp_size=tp,
        model=args.model,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        warmup_shapes=shapes,
        hf_config=hf_config,
    )
    summary = run_configurator(
        configurator, target, strict=True if args.strict else None, environ=dict(os.environ)
    )
    add_kv_sections(summary, configurator.model_config, hf_config)
    text = render(summary, args.format, args)
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def parse_warmup_shapes(values: Any) -> tuple[tuple[int, int, int], ...]:
    shapes = []
    for value in values:
        parts = value.split(",")
        try:
            numbers = tuple(int(p) for p in parts)
        except ValueError:
            numbers = ()
        if len(numbers) != 3 or any(n < low for n, low in zip(numbers, WARMUP_MINIMUMS)):
            raise UsageError(
                "--warmup_shapes expects prompt_len,new_tokens,batch_size (integers >= 1, 0, 1), "
                f"found {value!r}"
            )
        shapes.append(numbers)
    return tuple(shapes)


def only_tp_size(model_config: Any) -> int:
    sizes = model_config.tp_sizes
    if len(sizes) == 1:
        return sizes[0]
    declared = ", ".join(map(str, sizes)) or "none"
    raise UsageError(f"--tp is required: {model_config.name} declares TP sizes {declared}")


def add_kv_sections(summary: ConfigurationSummary, model_config: Any, hf_config: Any) -> None:
    """KV-cache geometry of this TP size and the entry's KV-transfer plan, when they can be computed.

    They are informative: a model whose architecture the geometry does not
    cover still gets its configuration, with a note saying why these are missing.
    """
    from registry.kv_geometry import kv_geometry

    kv_dtype = summary.applied("engine").get("kv_cache_dtype", "auto")
    try:
        geometry = kv_geometry(hf_config, tp_size=summary.tp_size, kv_dtype=str(kv_dtype))
    except ModelRegError as error:
        summary.notes.append(f"KV geometry not computed: {error}")
        return
    summary.extra["kv_geometry"] = geometry.to_dict()
    device = model_config.get_device_config(summary.tp_size)
    if device is None:
        return
    from configurators.transfer import plan_for_device

    try:
        plan = plan_for_device(hf_config, model_config, device)
    except ModelRegError as error:
        summary.notes.append(f"transfer plan not computed: {error}")
        return
    if plan is not None:
        summary.extra["transfer_plan"] = plan.to_dict()


def render(summary: ConfigurationSummary, fmt: str, args: argparse.Namespace) -> str:
    if fmt == "json":
        return to_json(summary.to_dict())
    if fmt == "env":
        return env_lines(summary, args)
    lines = [summary.format_log_message()]
    geometry = summary.extra.get("kv_geometry")
    if geometry and not geometry["kv_bytes_per_token_per_gpu"]:
        lines.append(f"  KV cache: none ({geometry['attention']})")
    elif geometry:
        lines.append(
            f"  KV cache: {geometry['kv_bytes_per_token_per_gpu']} bytes/token/GPU "
            f"({geometry['kv_layers']} layers, {geometry['kv_heads_per_gpu']} KV heads/GPU, "
            f"head_dim {geometry['head_dim']}, {geometry['dtype_bytes']} bytes/value, "
            f"{geometry['attention']})"
        )
    plan = summary.extra.get("transfer_plan")
    if plan:
        lines.append(
            f"  KV transfer: io_size {plan['io_size']} bytes x batch {plan['batch_size']} "
            f"= {plan['total_buffer_size']} bytes ({plan['access_pattern']}, page_size {plan['page_size']}); "
            "`modelreg plan` gives the nixlbench command"
        )
    flags = server_flags(summary, {}, summary.backend)
    if flags:
        lines.append(f"  server flags: {shlex.join(flags)}")
    return "\n".join(lines) + "\n"


def env_lines(summary: ConfigurationSummary, args: argparse.Namespace) -> str:
    """``export`` lines to ``eval`` in a shell; everything else as ``#`` comments the shell ignores."""
    lines = [
        f"# modelreg configure {shlex.quote(args.model)} --tp {summary.tp_size} --backend {summary.backend}"
    ]
    for setting in summary.section("env"):
        if setting.status in (APPLIED, REPLACED):
            lines.append(f"export {setting.name}={shlex.quote(setting.value.applied)}")
        else:
            lines.append(
                f"# kept {setting.name}={setting.previous!r} (registry default {setting.value.default!r})"
            )
    flags = server_flags(summary, {}, summary.backend)
    if flags:
        lines.append("# server flags: " + shlex.join(flags))
    if summary.runtime is not None and summary.runtime.supported is False:
        lines.append("# " + summary.runtime.line())
    lines.extend(f"# warning: {w}" for w in summary.warnings)
    # A newline inside a quoted value is fine for the shell; inside a comment it would end the comment.
    return "\n".join(line if line.startswith("export ") else line.replace("\n", " ") for line in lines) + "\n"
