"""Run the nixlbench binary for a plan and read its results table.

nixlbench always runs as two instances (initiator and target) that register in
etcd and take ranks in arrival order — also on a single host, where we start
both with the same argv. Their output is streamed line by line (prefixed with
the instance) so a long run shows signs of life, and kept for parsing.

The results table is a header row (``Block Size (B)  Batch Size  B/W (GB/Sec)
...``), a dashed rule, then one row of numbers per block/batch size. Its columns
changed between nixlbench versions and the rows may be interleaved with library
log lines or prefixed with timestamps, so the parser maps columns by header
name and accepts any line that ends in exactly as many numbers as there are
columns.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from registry.errors import ModelRegError

HEADER_ANCHOR = "Block Size (B)"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CONSISTENCY_FAILURE = re.compile(r"consisten\w*.*\b(fail\w*|mismatch\w*|error)", re.IGNORECASE)

# header text → our field; the first present wins for each field.
COLUMN_FIELDS: dict[str, str] = {
    "Block Size (B)": "block_size",
    "Batch Size": "batch_size",
    "B/W (GB/Sec)": "bandwidth_gbps",
    "Avg Lat. (us)": "avg_latency_us",
    "P99 Tx (us)": "p99_latency_us",
}


class NixlbenchError(ModelRegError):
    """nixlbench failed, or printed no results table."""


@dataclass(frozen=True)
class NixlbenchRow:
    """One row of nixlbench's results table, with every column kept by its header."""

    block_size: int
    batch_size: int
    bandwidth_gbps: float
    avg_latency_us: float | None
    p99_latency_us: float | None
    columns: Mapping[str, float]


@dataclass(frozen=True)
class NixlbenchOutput:
    """What the instances printed and how they exited."""

    text: str
    returncodes: tuple[int, ...]
    rows: tuple[NixlbenchRow, ...]
    consistency_failed: bool


def parse_results(text: str) -> list[NixlbenchRow]:
    """Every results row in ``text``; ``[]`` when there is no table.

    A row must start in the header's column (same prefix width, e.g. a log
    timestamp) and hold exactly one number per header column, with integral
    block and batch sizes; a library log line that merely ends in numbers is
    not a row.
    """
    rows: list[NixlbenchRow] = []
    header: list[str] | None = None
    column = 0
    pattern: re.Pattern[str] | None = None
    for line in text.splitlines():
        if HEADER_ANCHOR in line:
            column = line.index(HEADER_ANCHOR)
            header = _header_columns(line[column:])
            pattern = re.compile(r"\s+".join([f"({_NUMBER})"] * len(header)))
            continue
        if header is None or pattern is None or len(line) <= column:
            continue
        match = pattern.fullmatch(line[column:].strip())
        if match and line[column] != " " and _integral(match.group(1)) and _integral(match.group(2)):
            rows.append(_row(header, [float(v) for v in match.groups()]))
    return rows


def _integral(text: str) -> bool:
    return text.isdigit()


def _header_columns(text: str) -> list[str]:
    """Column names are separated by two or more spaces."""
    return [name.strip() for name in re.split(r"\s{2,}", text.strip()) if name.strip()]


def _row(header: Sequence[str], values: Sequence[float]) -> NixlbenchRow:
    columns = dict(zip(header, values))
    picked: dict[str, float] = {}
    for name, target in COLUMN_FIELDS.items():
        if name in columns and target not in picked:
            picked[target] = columns[name]
    return NixlbenchRow(
        block_size=int(picked.get("block_size", 0)),
        batch_size=int(picked.get("batch_size", 0)),
        bandwidth_gbps=float(picked.get("bandwidth_gbps", 0.0)),
        avg_latency_us=picked.get("avg_latency_us"),
        p99_latency_us=picked.get("p99_latency_us"),
        columns=columns,
    )


_ADJUSTED_ITERATIONS = re.compile(r"Adjusting num_iter to (\d+)")
LARGE_BLOCK = 1 << 20


def timed_iterations(
    num_iter: int, num_threads: int, large_blk_iter_ftr: int, block_size: int, text: str = ""
) -> int:
    """How many timed iterations nixlbench really ran for one block size.

    nixlbench rounds ``num_iter`` up to a multiple of ``num_threads ×
    large_blk_iter_ftr`` (and says so in a WARNING line, preferred when present),
    then divides it by ``large_blk_iter_ftr`` for blocks above 1 MiB.
    """
    adjusted = _ADJUSTED_ITERATIONS.findall(text)
    if adjusted:
        count = int(adjusted[-1])
    else:
        partition = max(1, num_threads * large_blk_iter_ftr)
        count = -(-num_iter // partition) * partition
    if block_size > LARGE_BLOCK and large_blk_iter_ftr > 0:
        count //= large_blk_iter_ftr
    return count


def consistency_failed(text: str) -> bool:
    return any(_CONSISTENCY_FAILURE.search(line) for line in text.splitlines())


def run_instances(
    argv: Sequence[str],
    *,
    instances: int = 2,
    env: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
    timeout: float | None = None,
) -> NixlbenchOutput:
    """Start ``instances`` copies of ``argv`` (argv lists, no shell), stream and collect their output.

    The instances find each other through the etcd named in ``argv``; if one
    fails, the others are stopped rather than left waiting for a peer.
    """
    out = stream or sys.stderr
    labels = ["initiator", "target"] if instances == 2 else ["nixlbench"] * instances
    processes: list[subprocess.Popen[str]] = []
    chunks: list[list[str]] = [[] for _ in range(instances)]
    lock = threading.Lock()
    try:
        for _ in range(instances):
            processes.append(
                subprocess.Popen(
                    list(argv),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=dict(env) if env is not None else None,
                    text=True,
                    errors="replace",
                )
            )
    except OSError as error:
        _stop(processes)
        raise NixlbenchError(f"could not start {argv[0]}: {error}") from None
    readers = [
        threading.Thread(target=_pump, args=(p, labels[i], chunks[i], out, lock), daemon=True)
        for i, p in enumerate(processes)
    ]
    for reader in readers:
        reader.start()
    try:
        codes = _wait_all(processes, timeout)
    except BaseException:
        _stop(processes)
        raise
    finally:
        for reader in readers:
            reader.join(timeout=5)
    text = "".join(line for chunk in chunks for line in chunk)
    return NixlbenchOutput(text, tuple(codes), tuple(parse_results(text)), consistency_failed(text))


def _pump(process: subprocess.Popen[str], label: str, sink: list[str], out: TextIO, lock: threading.Lock):
    assert process.stdout is not None
    for line in process.stdout:
        sink.append(line)
        with lock:
            out.write(f"[{label}] {line}")
            out.flush()


def _wait_all(processes: list[subprocess.Popen[str]], timeout: float | None) -> list[int]:
    """Wait for every instance; the first failure stops the rest (they would wait forever)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        codes = [p.poll() for p in processes]
        if all(code is not None for code in codes):
            return [int(code) for code in codes]  # type: ignore[arg-type]
        if any(code not in (None, 0) for code in codes):
            _stop(processes)
            return [int(p.wait()) for p in processes]
        if deadline is not None and time.monotonic() >= deadline:
            _stop(processes)
            raise NixlbenchError(f"nixlbench did not finish within {timeout:g} s (--timeout); stopped it")
        time.sleep(0.05)


def _stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def check_output(output: NixlbenchOutput, argv: Sequence[str]) -> NixlbenchRow:
    """The row to report, or one clear error saying what nixlbench did instead."""
    failed = [code for code in output.returncodes if code != 0]
    if failed:
        raise NixlbenchError(
            f"nixlbench exited with code {failed[0]}: {_last_line(output.text)} (command: {' '.join(argv)})"
        )
    if not output.rows:
        raise NixlbenchError(
            f"nixlbench printed no results table (no line with {HEADER_ANCHOR!r} followed by numbers); "
            f"last output: {_last_line(output.text)}"
        )
    return output.rows[-1]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
