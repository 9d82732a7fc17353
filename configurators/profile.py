"""Profiling glue: which runner, whether the plan fits, the result record, progress, rendering.

Both runners (in-process NIXL and the nixlbench binary) end in the same
:class:`ResultRecord`, so a report mixes them freely and ``--format json``
has one schema whatever produced the numbers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from configurators.nixl_runner import TransferJob, TransferStats, transfer_file_dir
from registry.errors import ModelRegError, UsageError
from registry.output import table, to_csv, to_json

RUNNERS = ("nixlbench", "nixl")
ROLES = ("initiator", "target")
# Single-host default, measured with benchmarks/bench_transfer.py (docs/profiling.md):
# cross-memory attach moves each block with one copy and ties for the best DRAM→DRAM
# bandwidth here; tcp is the wire-up transport that sm/cma alone lack.
DEFAULT_UCX_TLS = "cma,tcp"
SHRINK_FLAGS = "--num_requests, --isl or --total_buffer_size"
GIB = 1024**3


class ResourceError(ModelRegError):
    """The plan would not fit in this host's free memory or disk."""


@dataclass(frozen=True)
class ResultRecord:
    """One config file's measured transfer; the JSON schema of ``modelreg profile``."""

    config_file: str
    runner: str
    backend: str
    op_type: str
    io_size: int
    batch_size: int
    total_bytes: int
    iterations: int
    bandwidth_gbps: float
    latency_us: dict[str, float | None] = field(default_factory=dict)
    consistency: str = "not_checked"

    @classmethod
    def from_stats(
        cls, config_file: str, runner: str, job: TransferJob, stats: TransferStats
    ) -> ResultRecord:
        return cls(
            config_file=config_file,
            runner=runner,
            backend=job.backend,
            op_type=job.op_type,
            io_size=job.io_size,
            batch_size=job.batch_size,
            total_bytes=stats.total_bytes,
            iterations=stats.iterations,
            bandwidth_gbps=stats.bandwidth_gbps,
            latency_us=dict(stats.latency_us),
            consistency=stats.consistency,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- runner choice -----------------------------------------------------------------------


def nixl_importable() -> bool:
    """Whether NIXL's Python API is installed, without paying for its import."""
    import importlib.util

    try:
        return importlib.util.find_spec("nixl") is not None
    except (ImportError, ValueError):
        return False


def choose_runner(
    requested: str | None,
    *,
    which: Callable[[str], str | None] = shutil.which,
    have_nixl: Callable[[], bool] = nixl_importable,
) -> str:
    """``--runner`` if given; else nixlbench when on PATH, else NIXL's Python API."""
    if requested:
        if requested == "nixlbench" and which("nixlbench") is None:
            raise UsageError(
                "--runner nixlbench: no nixlbench on PATH; build it from NIXL's benchmark/nixlbench "
                "or use --runner nixl (pip install torch==2.13.0 && pip install '.[nixl]')"
            )
        if requested == "nixl" and not have_nixl():
            raise UsageError(
                "--runner nixl: NIXL's Python API is not installed; "
                "pip install torch==2.13.0 && pip install '.[nixl]'"
            )
        return requested
    if which("nixlbench") is not None:
        return "nixlbench"
    if have_nixl():
        return "nixl"
    raise UsageError(
        "profile needs a runner: put nixlbench (NIXL's benchmark/nixlbench) on PATH, or install NIXL's "
        "Python API with pip install torch==2.13.0 && pip install '.[nixl]'"
    )


# --- the job a plan asks for -------------------------------------------------------------


def job_from_nixlbench(args: Any) -> TransferJob:
    """The in-process job for a plan's nixlbench flags (a NixlbenchArgs).

    The batch is capped by ``total_buffer_size`` the way nixlbench caps it, so
    ``--total_buffer_size`` shrinks a run for both runners.
    """
    io_size = int(args.start_block_size)
    batch = int(args.start_batch_size)
    fit = max(1, int(args.total_buffer_size) // io_size) if io_size > 0 else batch
    return TransferJob(
        io_size=io_size,
        batch_size=min(batch, fit),
        num_iter=int(args.num_iter),
        warmup_iter=int(args.warmup_iter),
        op_type=str(args.op_type),
        backend=str(args.backend),
        initiator_seg_type=str(args.initiator_seg_type),
        target_seg_type=str(args.target_seg_type),
        filepath=str(args.filepath) or None,
        check_consistency=bool(args.check_consistency),
    )


# --- memory and disk safety --------------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    """What a run will allocate: host memory, and file bytes in ``file_dir``."""

    memory_bytes: int
    file_bytes: int = 0
    file_dir: str | None = None


def footprint(job: TransferJob, *, sides: int = 2) -> Footprint:
    """Host memory and file space of a run; ``sides`` is 1 when only one role runs here.

    Storage runs keep one DRAM buffer plus the file, and a second DRAM buffer to
    read the file back when checking a WRITE.
    """
    if job.uses_storage:
        buffers = 2 if job.check_consistency and job.op_type == "WRITE" else 1
        return Footprint(job.buffer_bytes * buffers, job.buffer_bytes, transfer_file_dir(job.filepath))
    return Footprint(job.buffer_bytes * sides)


def nixlbench_footprint(args: Any, *, sides: int = 2) -> Footprint:
    """nixlbench allocates ``total_buffer_size`` per side, whatever the batch."""
    size = int(args.total_buffer_size)
    if str(args.backend).upper() in ("POSIX", "GDS", "GDS_MT", "HF3FS"):
        return Footprint(size, size, str(args.filepath) or os.getcwd())
    return Footprint(size * sides)


def mem_available(meminfo: str = "/proc/meminfo") -> int | None:
    """MemAvailable in bytes: what the kernel can hand out without swapping."""
    try:
        with open(meminfo, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits(
    need: Footprint,
    *,
    available: int | None = None,
    disk_free: Callable[[str], int] | None = None,
) -> None:
    """Refuse, before anything is allocated, a run this host cannot hold."""
    free_memory = mem_available() if available is None else available
    if free_memory is not None and need.memory_bytes > free_memory:
        raise ResourceError(
            f"the plan needs {_gib(need.memory_bytes)} of host memory (source and destination buffers) "
            f"but only {_gib(free_memory)} is available (MemAvailable); shrink it with {SHRINK_FLAGS}"
        )
    if need.file_bytes and need.file_dir:
        free_disk = (disk_free or (lambda path: shutil.disk_usage(path).free))(need.file_dir)
        if need.file_bytes > free_disk:
            raise ResourceError(
                f"the plan writes {_gib(need.file_bytes)} to {need.file_dir} (--filepath) but only "
                f"{_gib(free_disk)} is free there; shrink it with {SHRINK_FLAGS} or choose another --filepath"
            )


def _gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB ({size} bytes)"


# --- environment -------------------------------------------------------------------------


@contextlib.contextmanager
def ucx_tls(
    requested: str | None, warn: TextIO | None = None, default: str | None = DEFAULT_UCX_TLS
) -> Iterator[str | None]:
    """Set UCX_TLS for the run unless the user's environment already sets it.

    A value the user exported is never silently replaced: a different
    ``--ucx-tls`` is reported and ignored. ``default=None`` leaves the choice to
    UCX (cross-host runs, where it should find InfiniBand or RoCE by itself).
    """
    existing = os.environ.get("UCX_TLS")
    if existing is not None:
        if requested and requested != existing:
            print(
                f"modelreg profile: UCX_TLS={existing} is already set in the environment; "
                f"--ucx-tls {requested} ignored",
                file=warn or sys.stderr,
            )
        yield existing
        return
    value = requested or default
    if value is None:
        yield None
        return
    os.environ["UCX_TLS"] = value
    try:
        yield value
    finally:
        os.environ.pop("UCX_TLS", None)


# --- progress ----------------------------------------------------------------------------


class ProgressBar:
    """A one-line bar on a terminal; silent when the stream is a pipe or file.

    Redrawn at most every ``interval`` seconds so that the bar never shows up
    in the timed loop's figures.
    """

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 0.1, width: int = 30):
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = label
        self.interval = interval
        self.width = width
        self._next = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now < self._next:
            return
        self._next = now + self.interval
        filled = self.width * done // max(1, total)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


# --- rendering ---------------------------------------------------------------------------

TEXT_COLUMNS = (
    "config_file",
    "runner",
    "backend",
    "op_type",
    "io_size",
    "batch_size",
    "iterations",
    "total_bytes",
    "GB/s",
    "avg us",
    "p50 us",
    "p99 us",
    "consistency",
)


def render(records: Sequence[ResultRecord], fmt: str) -> str:
    """The report: an aligned table, a JSON list, or CSV with ``latency_us.*`` columns."""
    dicts = [record.to_dict() for record in records]
    if fmt == "json":
        return to_json(dicts) + "\n"
    if fmt == "csv":
        return to_csv(dicts)
    rows = [_text_row(record) for record in dicts]
    return (table(rows, TEXT_COLUMNS) + "\n") if rows else ""


def _text_row(record: Mapping[str, Any]) -> dict[str, Any]:
    latency = record.get("latency_us") or {}
    row = {key: record[key] for key in TEXT_COLUMNS if key in record}
    row["GB/s"] = _fixed(record.get("bandwidth_gbps"), 3)
    row["avg us"] = _fixed(latency.get("avg"), 1)
    row["p50 us"] = _fixed(latency.get("p50"), 1)
    row["p99 us"] = _fixed(latency.get("p99"), 1)
    return row


def _fixed(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"
