"""``modelreg profile``: run each planned KV transfer and report what it measured.

The plan flags are ``plan``'s own (same model, config files, overrides and
nixlbench flags); this module adds how to run them: the runner, the role on a
multi-host run, etcd, UCX transports, and the report's format.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import traceback
from dataclasses import replace
from typing import Any

from configurators.commands.plan import PlannedRun, add_plan_arguments, plans_from_args
from configurators.etcd import DEFAULT_ENDPOINT, EtcdEndpoint, LocalEtcd, check_reachable, parse_endpoints
from configurators.profile import (
    DEFAULT_UCX_TLS,
    ROLES,
    RUNNERS,
    ProgressBar,
    ResultRecord,
    check_fits,
    choose_runner,
    footprint,
    job_from_nixlbench,
    nixlbench_footprint,
    render,
    ucx_tls,
)
from registry.errors import ModelRegError
from registry.output import FORMATS, check_writable, write_atomic

STORAGE = ("POSIX", "GDS", "GDS_MT", "HF3FS", "OBJ")


def _positive_seconds(text: str) -> float:
    """argparse type: seconds above zero; a NaN or negative wait would never end or never start."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, found {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, found {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    add_plan_arguments(parser)
    group = parser.add_argument_group("profile")
    group.add_argument(
        "--runner",
        choices=RUNNERS,
        help="nixlbench (the C++ benchmark) or nixl (NIXL's Python API, in-process); "
        "default: nixlbench when on PATH, else nixl",
    )
    group.add_argument(
        "--role",
        choices=ROLES,
        help="run one side of a two-host transfer (the other host runs the other role); default: both here",
    )
    group.add_argument(
        "--start-etcd",
        action="store_true",
        help="start a throwaway single-node etcd on 127.0.0.1 for this run and stop it afterwards",
    )
    group.add_argument(
        "--ucx-tls",
        help=f"UCX transports (default on one host: {DEFAULT_UCX_TLS}; with --role: UCX's own choice; "
        "an exported UCX_TLS wins)",
    )
    group.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=120.0,
        help="seconds a --role side waits for its peer in etcd before giving up (default: 120)",
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--output", help="write the report to this file (atomically) instead of stdout")


def run(args: argparse.Namespace) -> int:
    with _terminate_as_interrupt():
        return _run(args)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """Treat SIGTERM like Ctrl-C so temp files and a --start-etcd server are cleaned up too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    if args.output:
        check_writable(args.output)  # before the transfers, not after minutes of them
    runs = plans_from_args(args)
    planned = [r for r in runs if r.error is None]
    errors = [f"{r.error}" for r in runs if r.error is not None]
    records: list[ResultRecord] = []
    if planned:
        runner = choose_runner(args.runner)
        with contextlib.ExitStack() as stack:
            endpoint = _etcd(args, runner, planned, stack)
            # Across hosts UCX should pick the network (IB, RoCE) itself: no default there.
            stack.enter_context(ucx_tls(args.ucx_tls, default=None if args.role else DEFAULT_UCX_TLS))
            for index, item in enumerate(planned):
                try:
                    records.append(_profile(item, index, runner, args, endpoint))
                except ModelRegError as error:
                    errors.append(f"{item.config_file}: {error}")
                except BaseException as error:
                    # Ctrl-C: let NIXL agents held by the traceback go now, while a
                    # --start-etcd server still runs to take their metadata back.
                    traceback.clear_frames(error.__traceback__)
                    raise
    output = render(records, args.format)
    if args.output:
        write_atomic(args.output, output)
    else:
        sys.stdout.write(output)
    for message in errors:
        print(f"modelreg profile: error: {message}", file=sys.stderr)
    return 2 if errors else 0


def _is_storage(item: PlannedRun) -> bool:
    return str(item.nixlbench.backend).upper() in STORAGE


def _etcd(
    args: argparse.Namespace, runner: str, planned: list[PlannedRun], stack: contextlib.ExitStack
) -> EtcdEndpoint | None:
    """The etcd this run meets in, checked up front; None when no run needs one."""
    if args.start_etcd:
        return stack.enter_context(LocalEtcd())
    if runner == "nixlbench":
        # Storage backends run as one instance without etcd unless an endpoint is given explicitly.
        needs = any(not _is_storage(i) or i.nixlbench.etcd_endpoints != DEFAULT_ENDPOINT for i in planned)
    else:
        needs = bool(args.role) and any(not _is_storage(item) for item in planned)
    if not needs:
        return None
    return check_reachable(parse_endpoints(args.etcd_endpoints or DEFAULT_ENDPOINT))


def _profile(
    item: PlannedRun, index: int, runner: str, args: argparse.Namespace, endpoint: EtcdEndpoint | None
) -> ResultRecord:
    sides = 1 if args.role else 2
    if runner == "nixlbench":
        return _profile_nixlbench(item, args, endpoint, sides)
    from configurators import nixl_runner

    job = job_from_nixlbench(item.nixlbench)
    check_fits(footprint(job, sides=sides))
    progress = ProgressBar(f"{item.config_file}: {job.describe()}")
    if args.role and not job.uses_storage:
        assert endpoint is not None
        meet = nixl_runner.Rendezvous(endpoint, f"{item.nixlbench.benchmark_group}-{index}", args.timeout)
        if args.role == "target":
            stats = nixl_runner.run_target(job, meet)
        else:
            stats = nixl_runner.run_initiator(job, meet, progress)
    else:
        stats = nixl_runner.run_local(job, progress)
    return ResultRecord.from_stats(item.config_file, "nixl", job, stats)


def _profile_nixlbench(
    item: PlannedRun, args: argparse.Namespace, endpoint: EtcdEndpoint | None, sides: int
) -> ResultRecord:
    from configurators.nixlbench_run import check_output, run_instances, timed_iterations

    bench: Any = item.nixlbench
    if args.start_etcd and endpoint is not None:
        bench = replace(bench, etcd_endpoints=endpoint.url)
    check_fits(nixlbench_footprint(bench, sides=sides))
    argv = bench.argv("nixlbench")
    instances = 1 if (args.role or _is_storage(item)) else 2
    output = run_instances(argv, instances=instances, env=dict(os.environ))
    row = check_output(output, argv)
    counts = (int(bench.num_iter), int(bench.num_threads), int(bench.large_blk_iter_ftr))
    iterations = timed_iterations(*counts, row.block_size, output.text)
    if bench.check_consistency:
        consistency = "failed" if output.consistency_failed else "passed"
    else:
        consistency = "not_checked"
    return ResultRecord(
        config_file=item.config_file,
        runner="nixlbench",
        backend=str(bench.backend),
        op_type=str(bench.op_type),
        io_size=row.block_size,
        batch_size=row.batch_size,
        total_bytes=row.block_size * row.batch_size * iterations,
        iterations=iterations,
        bandwidth_gbps=row.bandwidth_gbps,
        latency_us={"avg": row.avg_latency_us, "p50": None, "p99": row.p99_latency_us},
        consistency=consistency,
    )
