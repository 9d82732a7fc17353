"""``modelreg profile`` end to end: real NIXL transfers, real etcd, nixlbench via a recording stand-in.

Plans are DeepSeek-R1 block-tp1-pp16 shrunk with ``--isl 256 --num_requests 1``:
256 tokens / page 256 = 1 page per request; 16 descriptors of 589824 B
(4 layers × 576 B × 256 tokens) = 9 MiB per side.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest
from conftest import MODELREG, ROOT, have_etcd, have_nixl, require_real_service

from configurators.commands.plan import plans_from_args
from configurators.etcd import LocalEtcd, free_port
from registry.cli import build_parser, main

SMALL = [
    "--model", "deepseek-ai/DeepSeek-R1",
    "--model_config", "examples/block-tp1-pp16.yaml",
    "--isl", "256", "--num_requests", "1",
    "--num_iter", "3", "--warmup_iter", "1",
]  # fmt: skip
IO_SIZE, BATCH = 589824, 16
FAKE = ROOT / "tests" / "fixtures" / "fake_nixlbench.py"


@pytest.fixture(autouse=True)
def _here(monkeypatch, offline_hf):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("UCX_TLS", raising=False)


def needs_nixl():
    require_real_service(have_nixl(), "NIXL's Python API (pip install '.[nixl]') is not installed")


def needs_etcd():
    require_real_service(have_etcd(), "etcd binary not installed")


def test_ucx_memory_to_memory_table(capsys):
    needs_nixl()
    code = main(["profile", *SMALL, "--runner", "nixl", "--backend", "UCX", "--source", "memory",
                 "--destination", "memory", "--check_consistency"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    header, _, row = out.splitlines()
    assert header.split()[:4] == ["config_file", "runner", "backend", "op_type"]
    expected = ["examples/block-tp1-pp16.yaml", "nixl", "UCX", "WRITE", str(IO_SIZE), str(BATCH), "3"]
    assert row.split()[:7] == expected
    assert row.split()[-1] == "passed"
    assert "#" not in err  # no progress bar when stderr is not a terminal


def test_json_report_written_atomically(tmp_path, capsys):
    needs_nixl()
    target = tmp_path / "results.json"
    code = main(["profile", *SMALL, "--runner", "nixl", "--format", "json", "--output", str(target)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == ""
    records = json.loads(target.read_text())
    assert len(records) == 1
    record = records[0]
    assert list(record) == [
        "config_file", "runner", "backend", "op_type", "io_size", "batch_size", "total_bytes",
        "iterations", "bandwidth_gbps", "latency_us", "consistency",
    ]  # fmt: skip
    assert record["total_bytes"] == 3 * IO_SIZE * BATCH  # 3 iterations × 589824 × 16 = 28311552
    assert set(record["latency_us"]) == {"avg", "p50", "p99"}
    assert record["consistency"] == "not_checked"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left behind


@pytest.mark.parametrize(("source", "op"), [("memory", "WRITE"), ("file", "READ")])
def test_posix_to_and_from_a_file(tmp_path, capsys, source, op):
    needs_nixl()
    code = main(["profile", *SMALL, "--runner", "nixl", "--backend", "POSIX", "--source", source,
                 "--filepath", str(tmp_path), "--check_consistency", "--format", "csv"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = out.splitlines()
    record = dict(zip(rows[0].split(","), rows[1].split(",")))
    assert (record["backend"], record["op_type"], record["consistency"]) == ("POSIX", op, "passed")
    assert list(tmp_path.iterdir()) == []


def test_several_config_files_make_one_report(capsys):
    needs_nixl()
    files = ["examples/block-tp1-pp16.yaml", "examples/layer-tp1-pp16.yaml"]
    code = main(["profile", "--model", "deepseek-ai/DeepSeek-R1",
                 "--model_configs", files[0], "--model_configs", files[1],
                 "--isl", "256", "--num_requests", "1", "--num_iter", "2", "--warmup_iter", "0",
                 "--runner", "nixl", "--format", "json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    records = json.loads(out)
    assert [r["config_file"] for r in records] == files
    assert records[1]["io_size"] == IO_SIZE // 4  # layer access: one layer per IO instead of 4


def test_oversized_plan_is_refused_before_allocating(capsys):
    needs_nixl()
    start = time.monotonic()
    huge = ["--model", "deepseek-ai/DeepSeek-R1", "--model_config", "examples/block-tp1-pp16.yaml"]
    code = main(["profile", *huge, "--num_requests", "1000000", "--runner", "nixl"])
    out, err = capsys.readouterr()
    assert code == 2
    assert time.monotonic() - start < 10
    assert "examples/block-tp1-pp16.yaml: the plan needs" in err
    assert "MemAvailable" in err and "--num_requests" in err and "--total_buffer_size" in err
    assert out == ""


def test_etcd_down_is_a_clear_error_within_seconds(capsys):
    needs_nixl()
    port = free_port()
    start = time.monotonic()
    code = main(["profile", *SMALL, "--runner", "nixl", "--role", "initiator",
                 "--etcd-endpoints", f"http://127.0.0.1:{port}"])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 2
    assert time.monotonic() - start < 5
    assert f"cannot reach etcd (http://127.0.0.1:{port}" in err and "--start-etcd" in err


def test_bad_etcd_endpoint_names_the_flag(capsys):
    needs_nixl()
    code = main(["profile", *SMALL, "--runner", "nixl", "--role", "target", "--etcd-endpoints", "nowhere"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--etcd-endpoints: expected http://HOST:PORT" in err and "'nowhere'" in err


def test_runner_nixlbench_missing_from_path(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    code = main(["profile", *SMALL, "--runner", "nixlbench"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--runner nixlbench: no nixlbench on PATH" in err


@pytest.fixture
def fake_nixlbench(tmp_path, monkeypatch):
    """Put the recording stand-in on PATH as ``nixlbench``; return its argv record file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nixlbench"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("MODELREG_FAKE_NIXLBENCH_RECORD", str(record))
    return record


def planned_argv(flags: list[str]) -> list[str]:
    args = build_parser("profile").parse_args(flags)
    return plans_from_args(args)[0].nixlbench.argv("nixlbench")


def test_nixlbench_runner_runs_the_plans_argv(fake_nixlbench, capsys):
    needs_etcd()
    with LocalEtcd() as endpoint:
        flags = [*SMALL, "--total_buffer_size", str(16 << 20), "--etcd-endpoints", endpoint.url]
        code = main(["profile", *flags, "--runner", "nixlbench", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    calls = [json.loads(line)["argv"] for line in fake_nixlbench.read_text().splitlines()]
    expected = planned_argv(flags)
    assert calls == [expected[1:], expected[1:]]  # two instances, each with exactly the plan's flags
    assert f"--etcd_endpoints={endpoint.url}" in expected
    (record,) = json.loads(out)
    assert record["runner"] == "nixlbench"
    assert (record["io_size"], record["batch_size"], record["bandwidth_gbps"]) == (IO_SIZE, BATCH, 12.5)
    assert record["latency_us"] == {"avg": 42.0, "p50": None, "p99": 55.0}
    # nixlbench rounds --num_iter 3 up to a multiple of num_threads × large_blk_iter_ftr = 1 × 16
    assert record["iterations"] == 16 and record["total_bytes"] == 16 * IO_SIZE * BATCH
    assert "[initiator] " in err and "[target] " in err  # nixlbench's output streamed to stderr


def test_nixlbench_consistency_failure_and_start_etcd(fake_nixlbench, capsys, monkeypatch):
    needs_etcd()
    monkeypatch.setenv("MODELREG_FAKE_NIXLBENCH_INCONSISTENT", "1")
    code = main(["profile", *SMALL, "--total_buffer_size", str(16 << 20), "--check_consistency",
                 "--runner", "nixlbench", "--start-etcd", "--format", "json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)[0]["consistency"] == "failed"
    calls = [json.loads(line)["argv"] for line in fake_nixlbench.read_text().splitlines()]
    (endpoint,) = {arg.split("=", 1)[1] for arg in calls[0] if arg.startswith("--etcd_endpoints=")}
    assert endpoint.startswith("http://127.0.0.1:")
    time.sleep(0.2)
    again = ["profile", *SMALL, "--runner", "nixlbench", "--etcd-endpoints", endpoint]
    assert main(again) == 2  # the --start-etcd server is gone
    assert "cannot reach etcd" in capsys.readouterr().err


def test_real_subprocess_run():
    needs_nixl()
    result = subprocess.run(
        [str(MODELREG), "profile", *SMALL, "--runner", "nixl", "--format", "json"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)  # NIXL's own log lines must not pollute stdout
    assert record["runner"] == "nixl" and record["bandwidth_gbps"] > 0


def test_two_roles_meet_through_real_etcd_as_two_commands():
    needs_nixl()
    needs_etcd()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with LocalEtcd() as endpoint:
        common = [str(MODELREG), "profile", *SMALL, "--runner", "nixl", "--check_consistency",
                  "--etcd-endpoints", endpoint.url, "--timeout", "60", "--format", "json"]  # fmt: skip
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "cwd": ROOT, "env": env}
        sides = [subprocess.Popen([*common, "--role", role], **pipes) for role in ("target", "initiator")]
        outputs = [side.communicate(timeout=120) for side in sides]
    for side, (_, err) in zip(sides, outputs):
        assert side.returncode == 0, err
    target, initiator = (json.loads(out)[0] for out, _ in outputs)
    assert target == initiator
    assert initiator["consistency"] == "passed" and initiator["total_bytes"] == 3 * IO_SIZE * BATCH


def test_existing_filepath_is_refused_and_kept(tmp_path, capsys):
    needs_nixl()
    existing = tmp_path / "kv.bin"
    existing.write_bytes(b"user data")
    code = main(["profile", *SMALL, "--runner", "nixl", "--backend", "POSIX", "--filepath", str(existing)])
    _, err = capsys.readouterr()
    assert code == 2
    assert f"--filepath {existing}: the file exists" in err
    assert existing.read_bytes() == b"user data"


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--runner", "cuda"),
        ("--role", "both"),
        ("--timeout", "soon"),
        ("--timeout", "-1"),
        ("--timeout", "nan"),
    ],
)
def test_bad_profile_flags_exit_2_naming_the_flag(capsys, flag, value):
    with pytest.raises(SystemExit) as caught:
        main(["profile", *SMALL, flag, value])
    assert caught.value.code == 2
    assert flag in capsys.readouterr().err


def test_unwritable_output_fails_before_any_transfer(capsys, tmp_path):
    target = tmp_path / "no" / "report.txt"
    started = time.monotonic()
    assert main(["profile", *SMALL, "--runner", "nixl", "--output", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"modelreg profile: error: --output {target}: expected a file in an existing directory, "
        f"but {tmp_path / 'no'} does not exist\n"
    )
    assert time.monotonic() - started < 5  # refused up front, not after the run
