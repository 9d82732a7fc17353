"""nixlbench's results table parser and the two-instance subprocess runner.

Provenance of the fixtures (nixlbench is not installed on this host, so none
was captured here):

* ``nixlbench_ucx_etcd_log.txt`` — lines transcribed from a public CI log of
  NIXL's own pipeline running ``nixlbench --etcd_endpoints ... --check_consistency``
  with two instances (UCX, DRAM→DRAM, block 16384, batch 4). It keeps the CI's
  timestamp prefix and the 10-column table of recent nixlbench (``B/W (GB/Sec)``
  third, then ``Avg Lat.``, prep/post/tx latencies).
* ``nixlbench_legacy_interleaved.txt`` — the 6-column table of earlier nixlbench
  (``printStatsHeader`` in ``benchmark/nixlbench/src/utils/utils.cpp``: block,
  batch, avg latency, MiB/s, GiB/s, GB/s) with UCX/glog lines interleaved, one
  of which ends in six numbers and must not be taken for a row.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest

from configurators.nixlbench_run import (
    NixlbenchError,
    NixlbenchOutput,
    check_output,
    consistency_failed,
    parse_results,
    run_instances,
    timed_iterations,
)

FIXTURES = Path(__file__).parent / "fixtures"
FAKE = FIXTURES / "fake_nixlbench.py"


def test_parses_the_ten_column_table_behind_timestamps():
    rows = parse_results((FIXTURES / "nixlbench_ucx_etcd_log.txt").read_text())
    assert len(rows) == 1
    row = rows[0]
    assert (row.block_size, row.batch_size) == (16384, 4)
    assert row.bandwidth_gbps == 4.524677
    assert row.avg_latency_us == 3.6
    assert row.p99_latency_us == 11.0  # "P99 Tx (us)"
    assert row.columns["Avg Prep (us)"] == 62.0


def test_parses_the_legacy_table_and_skips_log_lines():
    rows = parse_results((FIXTURES / "nixlbench_legacy_interleaved.txt").read_text())
    assert [(r.block_size, r.batch_size) for r in rows] == [(4096, 1), (8192, 1), (16384, 1)]
    assert [r.bandwidth_gbps for r in rows] == [1.950573, 3.150758, 4.201026]  # the GB/s column, not MiB/s
    assert rows[-1].avg_latency_us == 3.9
    assert rows[-1].p99_latency_us is None


def test_no_table_means_no_rows_and_a_clear_error():
    text = "Connecting to ETCD at http://localhost:2379\nERROR: failed to connect\n"
    assert parse_results(text) == []
    with pytest.raises(NixlbenchError, match=r"no results table.*ERROR: failed to connect"):
        check_output(NixlbenchOutput(text, (0, 0), (), False), ["nixlbench"])


def test_a_failed_instance_is_reported_with_its_last_line():
    output = NixlbenchOutput("ERROR: target failed to register memory\n", (0, 3), (), False)
    with pytest.raises(NixlbenchError, match="exited with code 3: ERROR: target failed"):
        check_output(output, ["nixlbench", "--backend=UCX"])


def test_consistency_failure_lines_are_spotted():
    assert consistency_failed("x\nConsistency check failed for iteration 3\n")
    assert consistency_failed("data consistency mismatch at offset 10")
    assert not consistency_failed("Check consistency (--check_consistency=[0,1])               : 1")


FAKE_ARGV = [sys.executable, str(FAKE)]


def test_two_instances_run_and_stream(tmp_path, monkeypatch):
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("MODELREG_FAKE_NIXLBENCH_RECORD", str(record))
    argv = [*FAKE_ARGV, "--start_block_size=589824", "--start_batch_size=16"]
    stream = io.StringIO()
    output = run_instances(argv, instances=2, stream=stream)
    assert output.returncodes == (0, 0)
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [c["argv"] for c in calls] == [argv[2:], argv[2:]]
    assert [(r.block_size, r.batch_size) for r in output.rows] == [(589824, 16)]
    streamed = stream.getvalue()
    assert "[initiator] " in streamed and "[target] " in streamed and "Registered as rank" in streamed
    assert check_output(output, argv).bandwidth_gbps == 12.5


def test_one_failing_instance_stops_the_other(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELREG_FAKE_NIXLBENCH_RECORD", str(tmp_path / "argv.jsonl"))
    monkeypatch.setenv("MODELREG_FAKE_NIXLBENCH_FAIL", "1")
    start = time.monotonic()
    output = run_instances(FAKE_ARGV, instances=2, stream=io.StringIO())
    assert time.monotonic() - start < 20  # the survivor would otherwise sleep 300 s
    assert 3 in output.returncodes
    with pytest.raises(NixlbenchError, match="exited with code"):
        check_output(output, ["nixlbench"])


def test_missing_binary_is_one_clear_error(tmp_path):
    with pytest.raises(NixlbenchError, match="could not start"):
        run_instances([str(tmp_path / "nixlbench")], instances=2, stream=io.StringIO())


def test_timed_iterations_follow_nixlbench_rounding():
    assert timed_iterations(1000, 1, 16, 4096) == 1008  # 1000 rounded up to a multiple of 1 × 16
    assert timed_iterations(1000, 1, 16, 4 << 20) == 63  # above 1 MiB: 1008 // 16
    assert timed_iterations(1000, 4, 16, 1 << 20) == 1024  # multiple of 4 × 16; exactly 1 MiB is not "above"
    log = (FIXTURES / "nixlbench_ucx_etcd_log.txt").read_text()
    assert timed_iterations(1000, 1, 16, 16384, log) == 1008  # from "Adjusting num_iter to 1008"
