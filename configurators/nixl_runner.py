"""The planned KV transfer executed in-process through NIXL's Python API.

nixlbench is a C++ binary that few machines have; NIXL's Python wheel installs
anywhere, runs on CPU-only hosts, and moves bytes through the same backends
(UCX for memory, POSIX for files). This module runs exactly what a plan asks
for — ``batch_size`` descriptors of ``io_size`` bytes, ``warmup_iter`` then
``num_iter`` transfers of ``op_type`` — and measures each iteration.

Three shapes of run:

* memory → memory in one process: two agents (initiator and target) with a
  loopback UCX connection;
* memory ↔ file: one agent with the POSIX backend, DRAM on one side and a
  temporary file on the other;
* memory → memory across processes or hosts: :func:`run_target` and
  :func:`run_initiator` meet in etcd — NIXL exchanges agent metadata there, and
  we exchange buffer descriptors and results as small JSON values.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from configurators.etcd import EtcdClient, EtcdEndpoint
from registry.errors import ModelRegError

STORAGE_BACKENDS = frozenset({"POSIX", "GDS", "GDS_MT", "HF3FS", "OBJ", "AZURE_BLOB", "GUSLI", "INFINIA"})
MEMORY_SEGMENTS = frozenset({"DRAM", "VRAM"})
OPS = ("WRITE", "READ")
PATTERN_PERIOD = 251  # prime: a block landing at the wrong offset never matches by accident
CHECK_CHUNK = 64 << 20
INSTALL_HINT = "install NIXL's Python API: pip install torch==2.13.0 && pip install '.[nixl]'"

Progress = Callable[[int, int], None]


class TransferError(ModelRegError):
    """NIXL could not set up or complete the planned transfer."""


@dataclass(frozen=True)
class TransferJob:
    """What one profiling run moves; field names follow nixlbench's flags."""

    io_size: int
    batch_size: int
    num_iter: int
    warmup_iter: int = 0
    op_type: str = "WRITE"
    backend: str = "UCX"
    initiator_seg_type: str = "DRAM"
    target_seg_type: str = "DRAM"
    filepath: str | None = None
    check_consistency: bool = False

    def __post_init__(self) -> None:
        if self.io_size <= 0 or self.batch_size <= 0 or self.num_iter <= 0 or self.warmup_iter < 0:
            raise TransferError(
                f"a transfer needs io_size, batch_size and num_iter > 0 and warmup_iter >= 0, found "
                f"io_size={self.io_size} batch_size={self.batch_size} num_iter={self.num_iter} "
                f"warmup_iter={self.warmup_iter}"
            )
        if self.op_type not in OPS:
            raise TransferError(f"--op_type: expected one of {', '.join(OPS)}, found {self.op_type!r}")

    @property
    def buffer_bytes(self) -> int:
        """Bytes of one side's buffer: the descriptors are laid out back to back."""
        return self.io_size * self.batch_size

    @property
    def uses_storage(self) -> bool:
        return self.backend in STORAGE_BACKENDS or self.target_seg_type == "FILE"

    def describe(self) -> str:
        target = "FILE" if self.uses_storage else self.target_seg_type
        arrow = "→" if self.op_type == "WRITE" else "←"
        return (
            f"{self.backend} {self.op_type} {self.initiator_seg_type}{arrow}{target}, "
            f"io_size {self.io_size} × batch {self.batch_size}"
        )


@dataclass(frozen=True)
class TransferStats:
    """Measured figures of the ``num_iter`` timed iterations (warmup excluded)."""

    iterations: int
    total_bytes: int
    bandwidth_gbps: float
    latency_us: dict[str, float]
    consistency: str  # passed | failed | not_checked

    @classmethod
    def from_latencies(cls, job: TransferJob, latencies_ns: list[int], consistency: str) -> TransferStats:
        ordered = sorted(latencies_ns)
        elapsed_s = sum(ordered) / 1e9
        total = job.buffer_bytes * len(ordered)
        return cls(
            iterations=len(ordered),
            total_bytes=total,
            bandwidth_gbps=total / elapsed_s / 1e9 if elapsed_s > 0 else 0.0,
            latency_us={
                "avg": sum(ordered) / len(ordered) / 1e3,
                "p50": _percentile(ordered, 50) / 1e3,
                "p99": _percentile(ordered, 99) / 1e3,
            },
            consistency=consistency,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(ordered: list[int], pct: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least pct% at or below it."""
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


# --- NIXL access -------------------------------------------------------------------------


def _nixl_api():
    """Import NIXL lazily: it costs a second and is optional."""
    os.environ.setdefault("NIXL_LOG_LEVEL", "WARN")  # its Python logger writes INFO lines to stdout
    try:
        from nixl._api import nixl_agent, nixl_agent_config
    except ImportError as error:
        raise TransferError(f"--runner nixl: NIXL is not importable ({error}); {INSTALL_HINT}") from None
    return nixl_agent, nixl_agent_config


def _make_agent(name: str, backend: str, *, passive: bool = False):
    """An agent with one backend; only the passive side gets a progress thread.

    The target's progress thread is what completes a loopback UCX transfer
    between two agents in one process (without it the transfer never ends).
    The initiator needs none: its loop polls the request, which progresses its
    worker, and a spinning extra thread would take a core from the copy itself.
    """
    nixl_agent, nixl_agent_config = _nixl_api()
    try:
        agent = nixl_agent(name, nixl_agent_config(enable_prog_thread=passive, backends=[backend]))
    except Exception as error:
        raise TransferError(
            f"NIXL could not start its {backend} backend ({error}); "
            f"UCX_TLS={os.environ.get('UCX_TLS', '(unset)')}" + _tls_hint(backend)
        ) from None
    if backend not in agent.backends:
        raise TransferError(
            f"--backend {backend}: this NIXL build has no {backend} plugin "
            f"(available: {', '.join(agent.get_plugin_list())})"
        )
    return agent


def _tls_hint(backend: str) -> str:
    if backend != "UCX":
        return ""
    return "; shared-memory transports (sm, cma) need a wire-up transport too, e.g. --ucx-tls cma,tcp"


# --- buffers -----------------------------------------------------------------------------


def _pattern(length: int, offset: int = 0):
    """The deterministic byte pattern both sides can compute: byte i is (offset+i) mod 251."""
    import numpy as np

    base = np.arange(PATTERN_PERIOD, dtype=np.uint8)
    return np.resize(np.roll(base, -(offset % PATTERN_PERIOD)), length)


def _filled(length: int):
    import numpy as np

    buffer = np.empty(length, dtype=np.uint8)
    for start in range(0, length, CHECK_CHUNK):
        stop = min(length, start + CHECK_CHUNK)
        buffer[start:stop] = _pattern(stop - start, start)
    return buffer


def _zeroed(length: int):
    import numpy as np

    return np.zeros(length, dtype=np.uint8)


def _matches_pattern(read: Callable[[int, int], Any], length: int) -> bool:
    """Compare chunk by chunk so the check never needs a third full-size buffer."""
    import numpy as np

    for start in range(0, length, CHECK_CHUNK):
        size = min(CHECK_CHUNK, length - start)
        if not np.array_equal(read(start, size), _pattern(size, start)):
            return False
    return True


def _dram_descs(buffer, io_size: int, batch_size: int) -> list[tuple[int, int, int]]:
    base = buffer.ctypes.data
    return [(base + i * io_size, io_size, 0) for i in range(batch_size)]


# --- the timed loop ----------------------------------------------------------------------


def _timed_loop(agent, handle, job: TransferJob, progress: Progress | None) -> list[int]:
    """Post the request warmup_iter + num_iter times; keep the timed latencies in ns.

    This is the hot path the benchmark compares with a bare NIXL loop: one
    clock read before posting, one after completion, nothing else per iteration
    but the optional progress callback.
    """
    total = job.warmup_iter + job.num_iter
    latencies = []
    clock = time.perf_counter_ns
    for index in range(total):
        start = clock()
        state = agent.transfer(handle)
        while state == "PROC":
            state = agent.check_xfer_state(handle)
        elapsed = clock() - start
        if state != "DONE":
            raise TransferError(
                f"NIXL reported {state} on iteration {index + 1} of {job.describe()}; "
                f"UCX_TLS={os.environ.get('UCX_TLS', '(unset)')}" + _tls_hint(job.backend)
            )
        if index >= job.warmup_iter:
            latencies.append(elapsed)
        if progress is not None:
            progress(index + 1, total)
    return latencies


@contextlib.contextmanager
def _registered(agent, descs, mem_type: str) -> Iterator[None]:
    try:
        reg = agent.register_memory(descs, mem_type)
    except Exception as error:
        raise TransferError(f"NIXL could not register {mem_type} memory with {agent.name}: {error}") from None
    try:
        yield
    except BaseException:
        # Already failing (or Ctrl-C mid-transfer): clean up what we can, report the first cause.
        with contextlib.suppress(Exception):
            agent.deregister_memory(reg)
        raise
    agent.deregister_memory(reg)


@contextlib.contextmanager
def _xfer(agent, op: str, local, remote, remote_agent: str) -> Iterator[Any]:
    try:
        handle = agent.initialize_xfer(op, local, remote, remote_agent)
    except Exception as error:
        raise TransferError(f"NIXL could not create the {op} request to {remote_agent}: {error}") from None
    try:
        yield handle
    except BaseException:
        with contextlib.suppress(Exception):
            handle.release()  # aborts an in-flight transfer; may itself fail
        raise
    handle.release()


def _run_once(agent, op: str, local, remote, remote_agent: str) -> None:
    with _xfer(agent, op, local, remote, remote_agent) as handle:
        state = agent.transfer(handle)
        while state == "PROC":
            state = agent.check_xfer_state(handle)
        if state != "DONE":
            raise TransferError(f"NIXL reported {state} on the {op} that reads the data back for checking")


# --- single process ----------------------------------------------------------------------


def run_local(job: TransferJob, progress: Progress | None = None) -> TransferStats:
    """Run both sides in this process: memory → memory over UCX, or memory ↔ file over POSIX."""
    if job.uses_storage:
        return _run_storage(job, progress)
    return _run_memory_pair(job, progress)


def _run_memory_pair(job: TransferJob, progress: Progress | None) -> TransferStats:
    _require_dram(job)
    suffix = f"{os.getpid()}-{time.monotonic_ns()}"
    initiator = _make_agent(f"modelreg-initiator-{suffix}", job.backend)
    target = _make_agent(f"modelreg-target-{suffix}", job.backend, passive=True)
    # WRITE pushes the initiator's bytes to the target; READ pulls the target's.
    local_buf = _filled(job.buffer_bytes) if job.op_type == "WRITE" else _zeroed(job.buffer_bytes)
    remote_buf = _zeroed(job.buffer_bytes) if job.op_type == "WRITE" else _filled(job.buffer_bytes)
    with (
        _registered(initiator, [(local_buf.ctypes.data, local_buf.nbytes, 0, "")], "DRAM"),
        _registered(target, [(remote_buf.ctypes.data, remote_buf.nbytes, 0, "")], "DRAM"),
    ):
        initiator.add_remote_agent(target.get_agent_metadata())
        try:
            local = initiator.get_xfer_descs(_dram_descs(local_buf, job.io_size, job.batch_size), "DRAM")
            remote = target.get_xfer_descs(_dram_descs(remote_buf, job.io_size, job.batch_size), "DRAM")
            with _xfer(initiator, job.op_type, local, remote, target.name) as handle:
                latencies = _timed_loop(initiator, handle, job, progress)
        finally:
            initiator.remove_remote_agent(target.name)
    landed = remote_buf if job.op_type == "WRITE" else local_buf
    consistency = _verdict(job, lambda start, size: landed[start : start + size])
    return TransferStats.from_latencies(job, latencies, consistency)


def _require_dram(job: TransferJob) -> None:
    sides = (("--initiator_seg_type", job.initiator_seg_type), ("--target_seg_type", job.target_seg_type))
    for flag, seg in sides:
        if seg != "DRAM":
            raise TransferError(
                f"{flag} {seg}: the in-process NIXL runner allocates host memory (DRAM) only; "
                "use --runner nixlbench for VRAM"
            )


def _verdict(job: TransferJob, read: Callable[[int, int], Any]) -> str:
    if not job.check_consistency:
        return "not_checked"
    return "passed" if _matches_pattern(read, job.buffer_bytes) else "failed"


def _run_storage(job: TransferJob, progress: Progress | None) -> TransferStats:
    """DRAM ↔ FILE through one agent: WRITE fills the file, READ drains it.

    The file lives in ``job.filepath`` (a directory, default the temp dir) and is
    removed on every exit path. With checking on, a WRITE run reads the file back
    through NIXL into a second buffer — a full DRAM → FILE → DRAM round trip.
    """
    if job.initiator_seg_type != "DRAM":
        raise TransferError(
            f"--initiator_seg_type {job.initiator_seg_type}: storage runs move between DRAM and a file here"
        )
    agent = _make_agent(f"modelreg-storage-{os.getpid()}-{time.monotonic_ns()}", job.backend)
    fd, path = _transfer_file(job.filepath)
    try:
        _prepare_file(fd, job)
        buffer = _filled(job.buffer_bytes) if job.op_type == "WRITE" else _zeroed(job.buffer_bytes)
        file_descs = [(i * job.io_size, job.io_size, fd) for i in range(job.batch_size)]
        with (
            _registered(agent, [(buffer.ctypes.data, buffer.nbytes, 0, "")], "DRAM"),
            _registered(agent, [(0, job.buffer_bytes, fd, "")], "FILE"),
        ):
            local = agent.get_xfer_descs(_dram_descs(buffer, job.io_size, job.batch_size), "DRAM")
            remote = agent.get_xfer_descs(file_descs, "FILE")
            with _xfer(agent, job.op_type, local, remote, agent.name) as handle:
                latencies = _timed_loop(agent, handle, job, progress)
            if job.op_type == "READ" or not job.check_consistency:
                consistency = _verdict(job, lambda start, size: buffer[start : start + size])
            else:
                consistency = _read_back_verdict(agent, job, remote)
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return TransferStats.from_latencies(job, latencies, consistency)


def transfer_file_dir(filepath: str | None) -> str:
    """The directory the transfer file goes to (for the free-space check)."""
    if not filepath:
        return tempfile.gettempdir()
    if os.path.isdir(filepath):
        return filepath
    return os.path.dirname(os.path.abspath(filepath))


def _transfer_file(filepath: str | None) -> tuple[int, str]:
    """Open the transfer file: a fresh temp file in a directory, or a new file by that name.

    An existing file is never reused: it may be the user's data.
    """
    if not filepath or os.path.isdir(filepath):
        return tempfile.mkstemp(prefix="modelreg-kv-", suffix=".bin", dir=transfer_file_dir(filepath))
    if not os.path.isdir(transfer_file_dir(filepath)):
        raise TransferError(f"--filepath {filepath}: its directory does not exist")
    try:
        return os.open(filepath, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), filepath
    except FileExistsError:
        raise TransferError(
            f"--filepath {filepath}: the file exists; give a directory or a new file name "
            "(the transfer file is removed afterwards, so an existing one is never used)"
        ) from None


def _prepare_file(fd: int, job: TransferJob) -> None:
    """Size the file; for READ, fill it with the pattern the reader will check."""
    os.ftruncate(fd, job.buffer_bytes)
    if job.op_type == "READ":
        for start in range(0, job.buffer_bytes, CHECK_CHUNK):
            size = min(CHECK_CHUNK, job.buffer_bytes - start)
            os.pwrite(fd, _pattern(size, start).tobytes(), start)
        os.fsync(fd)


def _read_back_verdict(agent, job: TransferJob, file_side) -> str:
    back = _zeroed(job.buffer_bytes)
    with _registered(agent, [(back.ctypes.data, back.nbytes, 0, "")], "DRAM"):
        local = agent.get_xfer_descs(_dram_descs(back, job.io_size, job.batch_size), "DRAM")
        _run_once(agent, "READ", local, file_side, agent.name)
    return _verdict(job, lambda start, size: back[start : start + size])


# --- two processes through etcd ----------------------------------------------------------


@dataclass(frozen=True)
class Rendezvous:
    """Where the two sides meet: an etcd endpoint and a group name both sides share."""

    endpoint: EtcdEndpoint
    group: str
    timeout: float = 120.0

    @property
    def prefix(self) -> str:
        return f"/modelreg/profile/{self.group}/"

    def agent_name(self, role: str) -> str:
        return f"modelreg-{self.group}-{role}"


@contextlib.contextmanager
def _etcd_metadata(endpoint: EtcdEndpoint) -> Iterator[None]:
    """Point NIXL's metadata exchange at ``endpoint`` for the agents created inside."""
    previous = os.environ.get("NIXL_ETCD_ENDPOINTS")
    os.environ["NIXL_ETCD_ENDPOINTS"] = endpoint.url
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("NIXL_ETCD_ENDPOINTS", None)
        else:
            os.environ["NIXL_ETCD_ENDPOINTS"] = previous


def run_target(job: TransferJob, meet: Rendezvous) -> TransferStats:
    """The passive side: publish a buffer, wait for the initiator, check what landed.

    Returns the initiator's statistics (read back from etcd) so both hosts report
    the same figures.
    """
    _require_memory_job(job)
    client = EtcdClient(meet.endpoint)
    client.delete_prefix(meet.prefix)  # a crashed earlier run must not mislead the initiator
    buffer = _zeroed(job.buffer_bytes) if job.op_type == "WRITE" else _filled(job.buffer_bytes)
    with _etcd_metadata(meet.endpoint):
        agent = _make_agent(meet.agent_name("target"), job.backend, passive=True)
        with _registered(agent, [(buffer.ctypes.data, buffer.nbytes, 0, "")], "DRAM"):
            agent.send_local_metadata()
            try:
                client.put(
                    meet.prefix + "target",
                    json.dumps({"agent": agent.name, "addr": buffer.ctypes.data, "job": asdict(job)}),
                )
                client.wait_for(meet.prefix + "done", meet.timeout)
                if job.op_type == "WRITE":
                    verdict = _verdict(job, lambda start, size: buffer[start : start + size])
                    client.put(meet.prefix + "verdict", verdict)
                stats = json.loads(client.wait_for(meet.prefix + "stats", meet.timeout))
            finally:
                agent.invalidate_local_metadata()
    client.delete_prefix(meet.prefix)
    if "error" in stats:
        raise TransferError(f"the initiator failed: {stats['error']}")
    return TransferStats(**stats)


def run_initiator(job: TransferJob, meet: Rendezvous, progress: Progress | None = None) -> TransferStats:
    """The active side: find the target in etcd, run the timed loop, publish the figures."""
    _require_memory_job(job)
    client = EtcdClient(meet.endpoint)
    published = json.loads(client.wait_for(meet.prefix + "target", meet.timeout))
    mine, theirs = _shape(asdict(job)), _shape(published.get("job") or {})
    if mine != theirs:
        raise TransferError(
            f"the target in etcd group {meet.group!r} planned a different transfer ({theirs}) "
            f"than this initiator ({mine}); run both sides with the same plan and flags"
        )
    target_name = published["agent"]
    buffer = _filled(job.buffer_bytes) if job.op_type == "WRITE" else _zeroed(job.buffer_bytes)
    with _etcd_metadata(meet.endpoint):
        agent = _make_agent(meet.agent_name("initiator"), job.backend)
        with _registered(agent, [(buffer.ctypes.data, buffer.nbytes, 0, "")], "DRAM"):
            agent.fetch_remote_metadata(target_name)
            _await_metadata(agent, target_name, meet)
            try:
                local = agent.get_xfer_descs(_dram_descs(buffer, job.io_size, job.batch_size), "DRAM")
                remote_descs = [
                    (published["addr"] + i * job.io_size, job.io_size, 0) for i in range(job.batch_size)
                ]
                remote = agent.get_xfer_descs(remote_descs, "DRAM")
                with _xfer(agent, job.op_type, local, remote, target_name) as handle:
                    latencies = _timed_loop(agent, handle, job, progress)
            except TransferError as error:
                client.put(meet.prefix + "stats", json.dumps({"error": str(error)}))
                raise
            finally:
                client.put(meet.prefix + "done", "1")
                agent.remove_remote_agent(target_name)
    if job.op_type == "WRITE":
        consistency = client.wait_for(meet.prefix + "verdict", meet.timeout)
    else:
        consistency = _verdict(job, lambda start, size: buffer[start : start + size])
    stats = TransferStats.from_latencies(job, latencies, consistency)
    client.put(meet.prefix + "stats", json.dumps(stats.to_dict()))
    return stats


def _shape(job: dict[str, Any]) -> dict[str, Any]:
    """The fields both sides must agree on; paths and seg types are each host's own business."""
    keys = ("io_size", "batch_size", "num_iter", "warmup_iter", "op_type", "backend", "check_consistency")
    return {key: job.get(key) for key in keys}


def _require_memory_job(job: TransferJob) -> None:
    if job.uses_storage:
        raise TransferError(
            f"--role: {job.backend} transfers stay on one host (DRAM ↔ FILE); drop --role to run them"
        )
    _require_dram(job)


def _await_metadata(agent, target_name: str, meet: Rendezvous) -> None:
    deadline = time.monotonic() + meet.timeout
    while not agent.check_remote_metadata(target_name):
        if time.monotonic() >= deadline:
            raise TransferError(
                f"NIXL found no metadata for agent {target_name!r} in etcd at {meet.endpoint} "
                f"within {meet.timeout:g} s"
            )
        time.sleep(0.01)
