"""The in-process NIXL runner, for real: UCX DRAM→DRAM, POSIX DRAM↔FILE, two processes via etcd.

Everything here moves real bytes through NIXL 1.5.1 on CPU; sizes are a few MiB
and a few iterations so the file runs in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT, have_etcd, have_nixl, require_real_service

from configurators import nixl_runner
from configurators.etcd import LocalEtcd
from configurators.nixl_runner import (
    TransferError,
    TransferJob,
    TransferStats,
    _matches_pattern,
    _pattern,
    _percentile,
    run_local,
)

IO = 256 << 10  # 256 KiB blocks × 8 = 2 MiB per side


@pytest.fixture(autouse=True)
def _ucx_transports(monkeypatch):
    monkeypatch.setenv("UCX_TLS", os.environ.get("UCX_TLS", "cma,tcp"))


def needs_nixl():
    require_real_service(have_nixl(), "NIXL's Python API (pip install '.[nixl]') is not installed")


def test_percentiles_are_nearest_rank():
    samples = list(range(1, 101))  # 1..100
    assert _percentile(samples, 50) == 50  # ceil(0.50 × 100) = 50th sample
    assert _percentile(samples, 99) == 99  # ceil(0.99 × 100) = 99th sample
    assert _percentile([7], 99) == 7


def test_stats_arithmetic():
    job = TransferJob(io_size=1000, batch_size=4, num_iter=4)
    stats = TransferStats.from_latencies(job, [1_000_000, 2_000_000, 3_000_000, 4_000_000], "not_checked")
    # 4 iterations × 1000 B × 4 = 16000 B in 10 ms → 16000 / 0.010 s = 1.6e6 B/s = 0.0016 GB/s
    assert stats.total_bytes == 16000
    assert stats.bandwidth_gbps == pytest.approx(0.0016)
    assert stats.latency_us == {"avg": 2500.0, "p50": 2000.0, "p99": 4000.0}


def test_pattern_check_catches_a_misplaced_byte():
    import numpy as np

    good = _pattern(3 * 251 + 17)
    assert _matches_pattern(lambda start, size: good[start : start + size], good.size)
    bad = good.copy()
    bad[500] ^= np.uint8(1)
    assert not _matches_pattern(lambda start, size: bad[start : start + size], bad.size)
    shifted = np.roll(good, 256)  # a block landing 256 bytes off: 256 is not a multiple of 251
    assert not _matches_pattern(lambda start, size: shifted[start : start + size], shifted.size)


@pytest.mark.parametrize(
    ("fields", "flag"),
    [({"io_size": 0}, "io_size"), ({"num_iter": 0}, "num_iter"), ({"op_type": "COPY"}, "--op_type")],
)
def test_job_rejects_impossible_values(fields, flag):
    values = {"io_size": IO, "batch_size": 8, "num_iter": 3, **fields}
    with pytest.raises(TransferError, match=flag):
        TransferJob(**values)


@pytest.mark.parametrize("op", ["WRITE", "READ"])
def test_ucx_dram_to_dram_moves_every_byte(op):
    needs_nixl()
    job = TransferJob(IO, 8, num_iter=5, warmup_iter=1, op_type=op, check_consistency=True)
    ticks = []
    stats = run_local(job, progress=lambda done, total: ticks.append((done, total)))
    assert stats.consistency == "passed"
    assert stats.iterations == 5
    assert stats.total_bytes == 5 * IO * 8
    assert stats.bandwidth_gbps > 0
    assert 0 < stats.latency_us["p50"] <= stats.latency_us["p99"]
    assert ticks[-1] == (6, 6) and len(ticks) == 6  # warmup + timed, one tick each


def test_unchecked_run_says_so():
    needs_nixl()
    stats = run_local(TransferJob(IO, 2, num_iter=2))
    assert stats.consistency == "not_checked"


@pytest.mark.parametrize("op", ["WRITE", "READ"])
def test_posix_dram_file_dram_round_trip(tmp_path, op):
    """WRITE: DRAM → FILE, then read back through NIXL (FILE → DRAM) and compared; READ: FILE → DRAM."""
    needs_nixl()
    job = TransferJob(IO, 8, num_iter=3, warmup_iter=1, op_type=op, backend="POSIX", filepath=str(tmp_path))
    job = TransferJob(**{**job.__dict__, "check_consistency": True})
    stats = run_local(job)
    assert stats.consistency == "passed"
    assert stats.total_bytes == 3 * IO * 8
    assert list(tmp_path.iterdir()) == []  # the transfer file is gone


def test_posix_temp_file_removed_when_the_run_fails(tmp_path, monkeypatch):
    needs_nixl()

    def broken(*args, **kwargs):
        raise TransferError("NIXL reported ERR on iteration 1")

    monkeypatch.setattr(nixl_runner, "_timed_loop", broken)
    job = TransferJob(IO, 2, num_iter=1, backend="POSIX", filepath=str(tmp_path))
    with pytest.raises(TransferError, match="ERR"):
        run_local(job)
    assert list(tmp_path.iterdir()) == []


def test_filepath_may_name_a_new_file(tmp_path):
    needs_nixl()
    target = tmp_path / "kv"
    job = TransferJob(IO, 2, num_iter=1, backend="POSIX", filepath=str(target), check_consistency=True)
    assert run_local(job).consistency == "passed"
    assert not target.exists()


def test_filepath_never_reuses_an_existing_file_or_a_missing_directory(tmp_path):
    needs_nixl()
    existing = tmp_path / "data.bin"
    existing.write_bytes(b"keep me")
    with pytest.raises(TransferError, match=r"--filepath .*data\.bin: the file exists"):
        run_local(TransferJob(IO, 2, num_iter=1, backend="POSIX", filepath=str(existing)))
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(TransferError, match=r"--filepath .*nope/kv: its directory does not exist"):
        run_local(TransferJob(IO, 2, num_iter=1, backend="POSIX", filepath=str(tmp_path / "nope" / "kv")))


def test_vram_is_refused_with_the_flag_named():
    needs_nixl()
    with pytest.raises(TransferError, match="--target_seg_type VRAM"):
        run_local(TransferJob(IO, 2, num_iter=1, target_seg_type="VRAM"))


def test_shared_memory_transport_without_wireup_is_explained(monkeypatch):
    """UCX_TLS=sm alone cannot start (no wire-up transport); the error says what to add."""
    needs_nixl()
    monkeypatch.setenv("UCX_TLS", "sm")
    with pytest.raises(TransferError, match="cma,tcp"):
        run_local(TransferJob(IO, 2, num_iter=1))


SIDE = textwrap.dedent(
    """
    import json, sys
    from configurators.etcd import parse_endpoints
    from configurators.nixl_runner import Rendezvous, TransferJob, run_initiator, run_target
    role, url, op = sys.argv[1:4]
    job = TransferJob({io}, 8, num_iter=4, warmup_iter=1, op_type=op, check_consistency=True)
    meet = Rendezvous(parse_endpoints(url)[0], "test-group", timeout=30)
    stats = (run_target if role == "target" else run_initiator)(job, meet)
    print(json.dumps(stats.to_dict()))
    """
).format(io=IO)


@pytest.mark.parametrize("op", ["WRITE", "READ"])
def test_initiator_and_target_meet_through_real_etcd(op):
    needs_nixl()
    require_real_service(have_etcd(), "etcd binary not installed")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with LocalEtcd() as endpoint:
        sides = {
            role: subprocess.Popen(
                [sys.executable, "-c", SIDE, role, endpoint.url, op],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )
            for role in ("target", "initiator")
        }
        results = {}
        for role, process in sides.items():
            out, err = process.communicate(timeout=90)
            assert process.returncode == 0, err
            results[role] = json.loads(out.strip().splitlines()[-1])
    assert results["initiator"] == results["target"]  # both hosts report the same figures
    assert results["initiator"]["consistency"] == "passed"
    assert results["initiator"]["total_bytes"] == 4 * IO * 8
