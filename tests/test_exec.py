"""``modelreg exec``: server command parsing, the configured launch, and a real exec.

vLLM and SGLang cannot run here, so end-to-end runs exec
``tests/fixtures/recording_server.py`` in their place: it records the argv and
environment it was started with and exits with the code it is told to.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import MODELREG, ROOT

from configurators.hooks import parse_server_flags, prepare_launch
from registry.cli import main
from registry.errors import MatchError, UsageError

GRANITE = "ibm-granite/granite-3.3-8b-instruct"
RECORDER = str(ROOT / "tests" / "fixtures" / "recording_server.py")
BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HF_HUB_OFFLINE": "1"}


def test_parse_vllm_flags_both_spellings():
    flags, where = parse_server_flags(
        [
            "serve",
            GRANITE,
            "-tp",
            "4",
            "--max-model-len=32k",
            "--enforce-eager",
            "--no-enable-prefix-caching",
        ],
        "vllm",
    )
    assert flags == {
        "tensor_parallel_size": "4",
        "max_model_len": "32k",
        "enforce_eager": True,
        "enable_prefix_caching": False,
    }
    assert where == {
        "tensor_parallel_size": 2,
        "max_model_len": 4,
        "enforce_eager": 5,
        "enable_prefix_caching": 6,
    }


def test_parse_sglang_aliases():
    flags, _ = parse_server_flags(
        [
            "-m",
            "sglang.launch_server",
            "--model",
            "m",
            "--tp",
            "2",
            "--context-length",
            "4096",
            "--seed",
            "-1",
        ],
        "sglang",
    )
    assert flags["model_path"] == "m" and flags["tp_size"] == "2" and flags["context_length"] == "4096"
    assert flags["seed"] == "-1"


def test_launch_appends_missing_flags_and_keeps_users(offline_hf):
    argv = ["vllm", "serve", GRANITE, "--tensor-parallel-size", "4", "--max-num-batched-tokens=2048"]
    launch = prepare_launch(argv, environ={"FLEX_HDMA_P2PSIZE": "7"})
    assert launch.argv == [*argv, "--num-gpu-blocks-override", "8192", "--enable-chunked-prefill"]
    assert launch.added_env == {"VLLM_DT_MAX_BATCH_TKV_LIMIT": "131072"}
    assert launch.env["FLEX_HDMA_P2PSIZE"] == "7"
    assert {s.name for s in launch.summary.conflicts} == {"FLEX_HDMA_P2PSIZE", "max_num_batched_tokens"}


def test_launch_reads_runtime_from_server_flags(offline_hf):
    # 32K = 32 * 1024 = 32768 (vLLM's binary suffix), matching the cb entry for TP 4.
    argv = ["vllm", "serve", GRANITE, "-tp", "4", "--max-model-len", "32K", "--max-num-seqs", "32"]
    launch = prepare_launch(argv, environ={})
    assert launch.summary.tp_size == 4
    assert launch.summary.runtime.supported is True
    assert launch.summary.runtime.requested == {"tp_size": 4, "max_model_len": 32768, "max_num_seqs": 32}


def test_sglang_launch(offline_hf):
    argv = [sys.executable, "-m", "sglang.launch_server", "--model-path", GRANITE, "--tp-size", "4"]
    launch = prepare_launch(argv, environ={})
    assert launch.summary.backend == "sglang"
    assert launch.argv[len(argv) :] == ["--chunked-prefill-size", "1024"]


def test_model_by_flag(offline_hf):
    launch = prepare_launch(["vllm", "serve", "--model", GRANITE, "--tensor-parallel-size=4"], environ={})
    assert launch.summary.model == GRANITE


def test_unknown_model_is_one_clear_error(offline_hf, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 3}))
    with pytest.raises(MatchError, match="no registry entry matches"):
        prepare_launch(["vllm", "serve", str(config)], environ={})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no server command given"),
        (["vllm", "serve", "--tensor-parallel-size", "4"], "cannot find the model in the server command"),
        (["python", "-m", "sglang.launch_server", "--tp", "2"], "expected --model-path MODEL"),
        (
            ["vllm", "serve", GRANITE, "-tp", "four"],
            "server flag --tensor-parallel-size must be a positive integer, found 'four'",
        ),
        (
            ["vllm", "serve", GRANITE, "--tensor-parallel-size", "0"],
            "server flag --tensor-parallel-size must be a positive integer, found '0'",
        ),
        (
            ["vllm", "serve", GRANITE, "-tp", "4", "--max-model-len=-5"],
            "server flag --max-model-len must be a positive integer, found '-5'",
        ),
        (
            ["vllm", "serve", GRANITE, "-tp", "4", "--max-model-len", "infk"],
            "server flag --max-model-len must be a positive integer, found 'infk'",
        ),
        (
            ["vllm", "serve", GRANITE, "--tensor-parallel-size"],
            "server flag --tensor-parallel-size must be a positive integer, found no value",
        ),
        ("vllm serve " + GRANITE, "the server command must be a list of strings"),
        (["myserver", GRANITE], "--backend is needed"),
        (
            ["vllm", "serve", GRANITE, "-tp", "4", "--override-generation-config", "[1]"],
            "must be a JSON object",
        ),
    ],
)
def test_bad_server_commands(offline_hf, argv, message):
    with pytest.raises(UsageError) as caught:
        prepare_launch(argv, environ={})
    assert message in str(caught.value)


def test_cli_dry_run(offline_hf, capsys, monkeypatch):
    for name in ("VLLM_DT_MAX_BATCH_TKV_LIMIT", "FLEX_HDMA_P2PSIZE", "MODELREG_REQUIRE_KNOWN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    code = main(["exec", "--backend", "vllm", "--dry-run", "--", "vllm", "serve", GRANITE, "-tp", "4"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "export VLLM_DT_MAX_BATCH_TKV_LIMIT=131072" in out
    assert out.splitlines()[-1].startswith(f"vllm serve {GRANITE} -tp 4 --num-gpu-blocks-override 8192")
    assert "✓ VLLM_DT_MAX_BATCH_TKV_LIMIT=131072" in err


def test_cli_dry_run_json(offline_hf, capsys):
    assert main(["exec", "--dry-run", "--format", "json", "--", "vllm", "serve", GRANITE, "-tp", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["argv"][-1] == "--enable-chunked-prefill"
    assert data["summary"]["model"] == GRANITE


def test_cli_missing_model_exit_2(offline_hf, capsys):
    assert main(["exec", "--", "vllm", "serve", "--port", "8000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modelreg exec: error: cannot find the model in the server command")


def run_exec(tmp_path, server_args, extra_env=None, exit_code=0):
    record = tmp_path / "record.json"
    env = {
        **BASE_ENV,
        "HF_HOME": str(tmp_path / "hf"),
        "MODELREG_RECORD_FILE": str(record),
        "MODELREG_RECORD_EXIT": str(exit_code),
        **(extra_env or {}),
    }
    proc = subprocess.run(
        [str(MODELREG), "exec", "--backend", "vllm", "--", sys.executable, RECORDER, *server_args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    recorded = json.loads(record.read_text()) if record.exists() else None
    return proc, recorded


def test_real_exec_sets_child_env_and_flags(tmp_path):
    proc, recorded = run_exec(
        tmp_path, ["serve", GRANITE, "--tensor-parallel-size", "4"], extra_env={"FLEX_HDMA_P2PSIZE": "5"}
    )
    assert proc.returncode == 0, proc.stderr
    assert recorded["argv"][1:] == [
        "serve",
        GRANITE,
        "--tensor-parallel-size",
        "4",
        "--num-gpu-blocks-override",
        "8192",
        "--max-num-batched-tokens",
        "1024",
        "--enable-chunked-prefill",
    ]
    assert recorded["env"]["VLLM_DT_MAX_BATCH_TKV_LIMIT"] == "131072"
    assert recorded["env"]["FLEX_HDMA_P2PSIZE"] == "5"  # the user's value reaches the server untouched
    assert "⚠ FLEX_HDMA_P2PSIZE=5 (set by the user; default: 268435456)" in proc.stderr
    assert proc.stdout == ""


def test_real_exec_passes_the_server_exit_code(tmp_path):
    proc, recorded = run_exec(tmp_path, ["serve", GRANITE, "-tp", "4"], exit_code=3)
    assert proc.returncode == 3
    assert recorded is not None


def test_real_exec_strict_refuses_to_start(tmp_path):
    proc, recorded = run_exec(
        tmp_path,
        ["serve", GRANITE, "-tp", "4"],
        extra_env={"MODELREG_REQUIRE_KNOWN_CONFIG": "1", "FLEX_HDMA_P2PSIZE": "5"},
    )
    assert proc.returncode == 2
    assert recorded is None
    assert "modelreg exec: error: MODELREG_REQUIRE_KNOWN_CONFIG=1: nothing was applied" in proc.stderr


def test_real_exec_missing_executable(tmp_path, offline_hf):
    proc = subprocess.run(
        [str(MODELREG), "exec", "--", "vllm-not-installed-here", "serve", GRANITE, "-tp", "4"],
        env={**BASE_ENV, "HF_HOME": str(tmp_path / "hf")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "cannot run the server command 'vllm-not-installed-here'" in proc.stderr


def sampling_registry(tmp_path) -> str:
    path = tmp_path / "models.yaml"
    path.write_text(
        "\n".join(
            [
                "version: 1",
                "models:",
                "  test/granite:",
                "    architecture: {model_type: granite, num_hidden_layers: 40, vocab_size: 49159}",
                "    supported_configs:",
                "      - {cb: true, tp_size: 4, max_model_len: 8192, max_num_seqs: 8}",
                "    backends:",
                "      vllm: {sampling_args: {temperature: 0.6, top_k: 20}}",
                "      sglang: {sampling_args: {temperature: 0.6}}",
            ]
        )
        + "\n"
    )
    return str(path)


def test_sampling_defaults_become_a_flag(offline_hf, tmp_path):
    launch = prepare_launch(
        ["vllm", "serve", GRANITE, "-tp", "4"], config_path=sampling_registry(tmp_path), environ={}
    )
    assert launch.argv[-2:] == ["--override-generation-config", '{"temperature": 0.6, "top_k": 20}']


def test_sampling_defaults_merge_under_the_users_flag(offline_hf, tmp_path):
    argv = ["vllm", "serve", GRANITE, "--override-generation-config", '{"top_k": 5}', "-tp", "4"]
    launch = prepare_launch(argv, config_path=sampling_registry(tmp_path), environ={})
    assert launch.argv == [*argv[:4], '{"temperature": 0.6, "top_k": 5}', "-tp", "4"]
    assert [s.name for s in launch.summary.conflicts] == ["top_k"]


def test_sglang_sampling_flag_with_equals(offline_hf, tmp_path):
    argv = ["python", "-m", "sglang.launch_server", "--model-path", GRANITE, "--tp", "4"]
    launch = prepare_launch(
        [*argv, '--preferred-sampling-params={"top_p": 0.9}'],
        config_path=sampling_registry(tmp_path),
        environ={},
    )
    assert launch.argv[-1] == '--preferred-sampling-params={"temperature": 0.6, "top_p": 0.9}'
