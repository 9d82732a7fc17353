"""Runner choice, the job a plan asks for, memory/disk safety, UCX_TLS handling, progress, rendering."""

from __future__ import annotations

import io
import json
import os

import pytest

from configurators.nixl_runner import TransferJob, TransferStats
from configurators.nixlbench import NixlbenchArgs
from configurators.profile import (
    DEFAULT_UCX_TLS,
    Footprint,
    ProgressBar,
    ResourceError,
    ResultRecord,
    check_fits,
    choose_runner,
    footprint,
    job_from_nixlbench,
    mem_available,
    nixlbench_footprint,
    render,
    ucx_tls,
)
from registry.errors import UsageError

GIB = 1024**3


def which_only(*found):
    return lambda name: f"/usr/bin/{name}" if name in found else None


def test_default_runner_prefers_nixlbench_then_nixl():
    assert choose_runner(None, which=which_only("nixlbench"), have_nixl=lambda: True) == "nixlbench"
    assert choose_runner(None, which=which_only(), have_nixl=lambda: True) == "nixl"


def test_no_runner_at_all_says_how_to_get_either():
    with pytest.raises(UsageError) as caught:
        choose_runner(None, which=which_only(), have_nixl=lambda: False)
    message = str(caught.value)
    assert "nixlbench" in message and "pip install" in message and "[nixl]" in message


def test_requested_runner_must_exist():
    with pytest.raises(UsageError, match="--runner nixlbench: no nixlbench on PATH"):
        choose_runner("nixlbench", which=which_only(), have_nixl=lambda: True)
    with pytest.raises(UsageError, match="--runner nixl: NIXL's Python API is not installed"):
        choose_runner("nixl", which=which_only("nixlbench"), have_nixl=lambda: False)
    assert choose_runner("nixl", which=which_only("nixlbench"), have_nixl=lambda: True) == "nixl"


def test_job_follows_the_nixlbench_flags():
    args = NixlbenchArgs(
        backend="POSIX",
        op_type="READ",
        start_block_size=589824,
        max_block_size=589824,
        start_batch_size=16,
        max_batch_size=16,
        num_iter=7,
        warmup_iter=2,
        check_consistency=True,
        filepath="/tmp",
    )
    job = job_from_nixlbench(args)
    assert job == TransferJob(589824, 16, 7, 2, "READ", "POSIX", "DRAM", "DRAM", "/tmp", True)
    assert job.uses_storage


def test_total_buffer_size_caps_the_batch_like_nixlbench():
    args = NixlbenchArgs(start_block_size=1 << 20, start_batch_size=100, total_buffer_size=10 << 20)
    assert job_from_nixlbench(args).batch_size == 10  # 10 MiB buffer / 1 MiB blocks
    tiny = NixlbenchArgs(start_block_size=1 << 20, start_batch_size=100, total_buffer_size=1)
    assert job_from_nixlbench(tiny).batch_size == 1  # never below one block


def test_footprints(tmp_path):
    job = TransferJob(1 << 20, 8, 1)
    assert footprint(job) == Footprint(2 * 8 << 20)  # source + destination
    assert footprint(job, sides=1) == Footprint(8 << 20)  # one role on this host
    storage = TransferJob(1 << 20, 8, 1, backend="POSIX", filepath=str(tmp_path), check_consistency=True)
    assert footprint(storage) == Footprint(2 * 8 << 20, 8 << 20, str(tmp_path))  # buffer + read-back, file
    new_file = TransferJob(1 << 20, 8, 1, backend="POSIX", filepath=str(tmp_path / "kv"))
    assert footprint(new_file) == Footprint(8 << 20, 8 << 20, str(tmp_path))  # the file's directory
    bench = NixlbenchArgs(total_buffer_size=3 * GIB)
    assert nixlbench_footprint(bench) == Footprint(6 * GIB)


def test_oversized_plan_is_refused_with_sizes_and_flags():
    with pytest.raises(ResourceError) as caught:
        check_fits(Footprint(12 * GIB), available=4 * GIB)
    message = str(caught.value)
    assert "12.00 GiB" in message and "4.00 GiB" in message and "MemAvailable" in message
    assert "--num_requests" in message and "--isl" in message and "--total_buffer_size" in message
    assert caught.value.exit_code == 2


def test_disk_space_is_checked_for_files(tmp_path):
    need = Footprint(1, 5 * GIB, str(tmp_path))
    with pytest.raises(ResourceError, match=r"writes 5\.00 GiB .*--filepath"):
        check_fits(need, available=GIB, disk_free=lambda path: GIB)
    check_fits(need, available=GIB, disk_free=lambda path: 6 * GIB)


def test_mem_available_reads_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   2048 kB\n")
    assert mem_available(str(meminfo)) == 2048 * 1024
    assert mem_available(str(tmp_path / "missing")) is None
    assert mem_available() is None or mem_available() > 0


def test_ucx_tls_default_is_set_and_restored(monkeypatch):
    monkeypatch.delenv("UCX_TLS", raising=False)
    with ucx_tls(None) as value:
        assert value == DEFAULT_UCX_TLS == os.environ["UCX_TLS"]
    assert "UCX_TLS" not in os.environ
    with ucx_tls("shm,tcp") as value:
        assert os.environ["UCX_TLS"] == "shm,tcp"
    assert "UCX_TLS" not in os.environ


def test_no_default_leaves_the_choice_to_ucx(monkeypatch):
    monkeypatch.delenv("UCX_TLS", raising=False)
    with ucx_tls(None, default=None) as value:
        assert value is None and "UCX_TLS" not in os.environ
    with ucx_tls("rc,ud,tcp", default=None) as value:
        assert os.environ["UCX_TLS"] == "rc,ud,tcp"
    assert "UCX_TLS" not in os.environ


def test_users_ucx_tls_is_never_replaced(monkeypatch):
    monkeypatch.setenv("UCX_TLS", "tcp")
    warnings = io.StringIO()
    with ucx_tls("cma,tcp", warn=warnings) as value:
        assert value == "tcp" == os.environ["UCX_TLS"]
    assert os.environ["UCX_TLS"] == "tcp"
    assert "already set" in warnings.getvalue() and "--ucx-tls cma,tcp ignored" in warnings.getvalue()


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal():
    pipe = io.StringIO()
    bar = ProgressBar("x", stream=pipe)
    bar(1, 2)
    bar(2, 2)
    assert pipe.getvalue() == ""
    tty = Terminal()
    bar = ProgressBar("run", stream=tty, width=10)
    bar(1, 4)
    bar(4, 4)
    assert tty.getvalue().endswith("\rrun [##########] 4/4\n")


RECORD = ResultRecord.from_stats(
    "examples/block-tp1-pp16.yaml",
    "nixl",
    TransferJob(589824, 16, 5),
    TransferStats(5, 5 * 589824 * 16, 7.25, {"avg": 1300.0, "p50": 1250.0, "p99": 1500.0}, "passed"),
)


def test_json_record_has_exactly_the_documented_fields():
    data = json.loads(render([RECORD], "json"))
    assert data == [
        {
            "config_file": "examples/block-tp1-pp16.yaml",
            "runner": "nixl",
            "backend": "UCX",
            "op_type": "WRITE",
            "io_size": 589824,
            "batch_size": 16,
            "total_bytes": 47185920,  # 5 × 589824 × 16
            "iterations": 5,
            "bandwidth_gbps": 7.25,
            "latency_us": {"avg": 1300.0, "p50": 1250.0, "p99": 1500.0},
            "consistency": "passed",
        }
    ]


def test_csv_and_text_rendering():
    csv_text = render([RECORD], "csv")
    header = csv_text.splitlines()[0].split(",")
    assert "latency_us.p99" in header and "bandwidth_gbps" in header
    text = render([RECORD], "text")
    assert "GB/s" in text and "7.250" in text and "1500.0" in text and "passed" in text
    assert render([], "text") == ""
