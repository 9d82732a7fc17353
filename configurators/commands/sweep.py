"""``modelreg sweep FILE``: every layout of every experiment, ranked, with the reasons for the rest."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from registry.errors import UsageError
from registry.output import FORMATS, check_writable, table, to_csv, to_json, write_atomic


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("file", metavar="FILE", help="experiment YAML (exps, patch/replace, agg/disagg)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--output", metavar="FILE", help="write the output to FILE instead of stdout")
    parser.add_argument("--plot", metavar="PNG", help="also draw KV capacity and transfer time to PNG")
    parser.add_argument(
        "--explain", metavar="NAME", help="show every candidate of experiment NAME and its fate"
    )
    parser.add_argument(
        "--top",
        type=int,
        default=10,
        metavar="N",
        help="text output: rows per experiment (0 = all; default 10)",
    )


def run(args: argparse.Namespace) -> int:
    from configurators.experiments import load_experiments
    from configurators.sweep import sweep

    if args.top < 0:
        raise UsageError(f"--top expects 0 or a positive number, found {args.top}")
    # Both targets are checked first, so a bad one fails before the other is written.
    if args.output:
        check_writable(args.output)
    if args.plot:
        check_writable(args.plot, "--plot")
        if args.output and os.path.realpath(args.output) == os.path.realpath(args.plot):
            raise UsageError(f"--output and --plot name the same file {args.plot!r}; give each its own")
    loaded = load_experiments(args.file)
    experiments = list(loaded.experiments)
    if args.explain is not None:
        names = [experiment.name for experiment in experiments]
        if args.explain not in names:
            raise UsageError(
                f"--explain: no experiment named '{args.explain}' in {args.file}; known: {', '.join(names)}"
            )
        experiments = [experiments[names.index(args.explain)]]
    if args.plot:
        from configurators.plot import require_matplotlib

        require_matplotlib()
    results = sweep(experiments)
    text = explain_text(results[0]) if args.explain is not None else render(results, args.format, args.top)
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    if args.plot:
        from configurators.plot import plot_results

        plot_results(results, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def render(results: list[Any], fmt: str, top: int) -> str:
    from configurators.sweep import sweep_document

    if fmt == "json":
        return to_json(sweep_document(results)) + "\n"
    if fmt == "csv":
        return to_csv(csv_rows(results))
    return "\n".join(text_block(result, top) for result in results)


def csv_rows(results: list[Any]) -> list[dict[str, Any]]:
    """One row per agg layout or disagg replica, in rank order."""
    rows = []
    for result in results:
        head = {"experiment": result.experiment.name, "serving_mode": result.experiment.serving_mode}
        if result.experiment.serving_mode == "agg":
            rows += [{**head, "rank": i, **f.to_dict()} for i, f in enumerate(result.layouts, 1)]
        else:
            for i, replica in enumerate(result.replicas, 1):
                row = replica.to_dict()
                nixl = row.pop("nixlbench") or {}
                row["nixlbench"] = " ".join(nixl.get("argv", []))
                rows.append({**head, "rank": i, **row})
    return rows


def _header(result: Any) -> list[str]:
    exp = result.experiment
    worker = exp.worker_config or exp.decode_worker_config
    systems = exp.system_name
    if exp.serving_mode == "disagg" and exp.decode_system_name != exp.system_name:
        systems = f"{exp.system_name} (prefill) + {exp.decode_system_name} (decode)"
    params = result.params
    return [
        f"== {exp.name}: {exp.serving_mode}, {result.model} on {exp.total_gpus} × {systems}, "
        f"backend {exp.backend_name}",
        f"   isl {exp.isl}, osl {exp.osl}; kv {worker.kvcache_quant_mode}, gemm {worker.gemm_quant_mode}, "
        f"moe {worker.moe_quant_mode}; nextn {result.nextn}; "
        f"{params.total / 1e9:.1f}B parameters ({params.active / 1e9:.1f}B active)",
    ]


def _layout_row(rank: int, figures: Any) -> dict[str, Any]:
    layout = figures.layout
    return {
        "#": rank,
        "role": layout.role,
        "tp": layout.tp,
        "pp": layout.pp,
        "dp": layout.dp,
        "moe_tp": layout.moe_tp,
        "moe_ep": layout.moe_ep,
        "gpus": layout.gpus,
        "weights GiB/gpu": f"{figures.weights_bytes_per_gpu / 2**30:.1f}",
        "free GiB/gpu": f"{figures.free_bytes_per_gpu / 2**30:.1f}",
        "KV B/token/gpu": figures.kv_bytes_per_token_per_gpu,
        "tokens/gpu": figures.tokens_per_gpu,
        "seqs": figures.concurrent_sequences,
        "seqs/gpu": f"{figures.sequences_per_gpu:.2f}",
        **({"replicas": figures.replicas} if layout.role == "agg" else {}),
    }


def _replica_row(rank: int, replica: Any) -> dict[str, Any]:
    shape = replica.shape
    return {
        "#": rank,
        "xPyD": f"{shape.prefill_workers}P{shape.decode_workers}D",
        "prefill": shape.prefill.label,
        "decode": shape.decode.label,
        "gpus": shape.gpus_per_replica,
        "replicas": shape.replicas,
        "seqs": replica.concurrent_sequences,
        "seqs/gpu": f"{replica.sequences_per_gpu:.2f}",
        "MB/request": f"{replica.bytes_per_request / 1e6:.1f}",
        "link": f"{replica.link} {replica.link_gbps:g} GB/s",
        "P→D ms": f"{replica.transfer_ms:.3f}",
    }


def _limit(rows: list[Any], top: int) -> tuple[list[Any], int]:
    if top and len(rows) > top:
        return rows[:top], len(rows) - top
    return rows, 0


def text_block(result: Any, top: int) -> str:
    exp = result.experiment
    lines = _header(result)
    if exp.serving_mode == "agg":
        shown, more = _limit(result.layouts, top)
        rows = [_layout_row(i, f) for i, f in enumerate(shown, 1)]
        empty = "no layout fits"
    else:
        shown, more = _limit(result.replicas, top)
        rows = [_replica_row(i, r) for i, r in enumerate(shown, 1)]
        empty = "no replica can be formed"
        kept = {"prefill": 0, "decode": 0}
        for figures in result.layouts:
            kept[figures.layout.role] += 1
        lines.append(
            f"   worker layouts kept: {kept['prefill']} prefill, {kept['decode']} decode; "
            f"replica sizes allowed: {result.replica_sizes or 'none'}"
        )
    lines.append("")
    if rows:
        lines.append(table(rows))
    else:
        lines.append(f"   {empty}: see --explain {exp.name}")
    if more:
        lines.append(f"   ... {more} more (--top 0 shows all, --format json lists everything)")
    if result.dropped:
        lines.append(f"   {len(result.dropped)} layouts dropped (--explain {exp.name} says why)")
    return "\n".join(lines) + "\n"


def _search(worker: Any) -> str:
    lists = ("num_gpu_per_worker", "tp_list", "pp_list", "dp_list", "moe_tp_list", "moe_ep_list")
    quant = ("gemm_quant_mode", "moe_quant_mode", "kvcache_quant_mode", "fmha_quant_mode", "comm_quant_mode")
    quants = " ".join(f"{name}={getattr(worker, name)}" for name in quant)
    return quants + "; " + " ".join(f"{name}={list(getattr(worker, name))}" for name in lists)


def explain_text(result: Any) -> str:
    """Every candidate of one experiment: how the search space was built and each verdict."""
    exp = result.experiment
    lines = _header(result)
    lines.append(
        f"   defined at {exp.location()}; mode {exp.mode}"
        + (" (config merged over the built-in defaults)" if exp.mode == "patch" else " (no defaults)")
        + (f"; profiles {', '.join(exp.profiles)}" if exp.profiles else "")
    )
    roles = ("agg",) if exp.serving_mode == "agg" else ("prefill", "decode")
    for role in roles:
        worker = exp.worker_config if role == "agg" else getattr(exp, f"{role}_worker_config")
        lines.append(f"\n{role} search space: {_search(worker)}")
        if not result.params.is_moe:
            lines.append("   dense model: dp, moe_tp and moe_ep lists ignored (layouts are tp × pp)")
        for rule, count in result.filtered.get(role, {}).items():
            lines.append(f"   {count} combinations outside the search space: not {rule}")
        for drop in (d for d in result.dropped if d.layout.role == role):
            lines.append(f"   dropped {drop.layout.label} ({drop.layout.gpus} GPUs): {drop.reason}")
        for figures in (f for f in result.layouts if f.layout.role == role):
            lines.append(
                f"   kept    {figures.layout.label} ({figures.layout.gpus} GPUs): "
                f"weights {figures.weights_bytes_per_gpu / 2**30:.1f} GiB/GPU, "
                f"{figures.tokens_per_gpu} tokens/GPU, {figures.concurrent_sequences} sequences"
            )
    if exp.serving_mode == "disagg":
        replica = exp.replica_config
        lines.append(
            f"\nreplicas: x prefill + y decode workers with x·p + y·d in {result.replica_sizes or 'nothing'} "
            f"(num_gpu_per_replica capped by max_gpu_per_replica {replica.max_gpu_per_replica or 'none'} "
            f"and total_gpus {exp.total_gpus}), "
            f"x ≤ {replica.max_prefill_worker}, y ≤ {replica.max_decode_worker}: "
            f"{len(result.replicas)} replicas"
        )
    lines.append(
        "\nranking: concurrent sequences per GPU (desc), then P→D transfer time (asc), then fewer GPUs"
    )
    return "\n".join(lines) + "\n"
