"""DRAM→DRAM transfer bandwidth: numpy memcpy vs NIXL UCX through our runner vs a bare NIXL loop.

For io sizes 64 KiB, 512 KiB and 4 MiB over the same 64 MiB buffers it prints
GB/s (1e9 bytes/s) and two ratios: runner / bare loop (target ≥ 0.95: the
harness costs almost nothing) and runner / memcpy at 4 MiB (target ≥ 0.40).
UCX_TLS is the profile command's default unless exported. Runs on CPU only.

The reference host is a shared 2-core VM whose bandwidth swings by 2× from one
second to the next, so the three are measured in many short interleaved rounds
(order alternating); GB/s is the best round, and runner / bare is the median of
the per-round ratios, which cancels drift between rounds.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from configurators.profile import DEFAULT_UCX_TLS

os.environ.setdefault("UCX_TLS", DEFAULT_UCX_TLS)
os.environ.setdefault("NIXL_LOG_LEVEL", "WARN")

BUFFER = 64 << 20
IO_SIZES = (64 << 10, 512 << 10, 4 << 20)
ITERATIONS = 30
WARMUP = 5
ROUNDS = 8


def memcpy_gbps(length: int) -> float:
    import numpy as np

    src = np.ones(length, dtype=np.uint8)
    dst = np.zeros(length, dtype=np.uint8)
    for _ in range(WARMUP):
        np.copyto(dst, src)
    start = time.perf_counter()
    for _ in range(ITERATIONS):
        np.copyto(dst, src)
    return length * ITERATIONS / (time.perf_counter() - start) / 1e9


def runner_gbps(io_size: int) -> float:
    from configurators.nixl_runner import TransferJob, run_local

    job = TransferJob(io_size, BUFFER // io_size, ITERATIONS, WARMUP)
    return run_local(job).bandwidth_gbps


def bare_gbps(io_size: int) -> float:
    """The same transfer with nothing around it: two agents, one request, a polling loop."""
    import numpy as np
    from nixl._api import nixl_agent, nixl_agent_config

    batch = BUFFER // io_size
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    initiator = nixl_agent(f"bare-i-{tag}", nixl_agent_config(enable_prog_thread=False, backends=["UCX"]))
    target = nixl_agent(f"bare-t-{tag}", nixl_agent_config(enable_prog_thread=True, backends=["UCX"]))
    src = np.ones(BUFFER, dtype=np.uint8)
    dst = np.zeros(BUFFER, dtype=np.uint8)
    reg_src = initiator.register_memory([(src.ctypes.data, BUFFER, 0, "")], "DRAM")
    reg_dst = target.register_memory([(dst.ctypes.data, BUFFER, 0, "")], "DRAM")
    initiator.add_remote_agent(target.get_agent_metadata())
    offsets = [i * io_size for i in range(batch)]
    local = initiator.get_xfer_descs([(src.ctypes.data + o, io_size, 0) for o in offsets], "DRAM")
    remote = target.get_xfer_descs([(dst.ctypes.data + o, io_size, 0) for o in offsets], "DRAM")
    handle = initiator.initialize_xfer("WRITE", local, remote, target.name)

    def once() -> None:
        state = initiator.transfer(handle)
        while state == "PROC":
            state = initiator.check_xfer_state(handle)

    for _ in range(WARMUP):
        once()
    start = time.perf_counter()
    for _ in range(ITERATIONS):
        once()
    elapsed = time.perf_counter() - start
    handle.release()
    initiator.remove_remote_agent(target.name)
    initiator.deregister_memory(reg_src)
    target.deregister_memory(reg_dst)
    return BUFFER * ITERATIONS / elapsed / 1e9


def main() -> int:
    try:
        import nixl  # noqa: F401
    except ImportError:
        print("NIXL is not installed (pip install torch==2.13.0 && pip install '.[nixl]'); skipped")
        return 0
    tls = os.environ["UCX_TLS"]
    print(f"UCX_TLS={tls}  buffer {BUFFER >> 20} MiB  {ITERATIONS} iterations, best of {ROUNDS}")
    header = ("io size", "memcpy", "runner", "bare", "runner/bare", "runner/memcpy")
    print("  ".join(f"{name:>{width}}" for name, width in zip(header, (9, 8, 8, 8, 11, 13))))
    ok = True
    for io_size in IO_SIZES:
        copies, runs, bares = [], [], []
        for round_ in range(ROUNDS):
            copies.append(memcpy_gbps(BUFFER))
            if round_ % 2:
                bares.append(bare_gbps(io_size))
                runs.append(runner_gbps(io_size))
            else:
                runs.append(runner_gbps(io_size))
                bares.append(bare_gbps(io_size))
        copy, ours, bare = max(copies), max(runs), max(bares)
        paired = statistics.median(r / b for r, b in zip(runs, bares))
        print(
            f"{io_size >> 10:>6} KiB  {copy:>8.2f}  {ours:>8.2f}  {bare:>8.2f}  "
            f"{paired:>11.2f}  {ours / copy:>13.2f}"
        )
        ok &= paired >= 0.95
        if io_size == IO_SIZES[-1]:
            ok &= ours / copy >= 0.40
    print("targets (runner ≥ 0.95 × bare; runner ≥ 0.40 × memcpy at 4 MiB):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
