"""``modelreg configure``: text, JSON and shell output on the packaged registry; bad input exits 2."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import MODELREG

from registry.cli import main
from registry.model_registry import get_model_registry

GRANITE = "ibm-granite/granite-3.3-8b-instruct"
ARGS = [
    "configure",
    GRANITE,
    "--tp",
    "4",
    "--backend",
    "vllm",
    "--max_model_len",
    "32768",
    "--max_num_seqs",
    "32",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, offline_hf):
    for name in ("VLLM_DT_MAX_BATCH_TKV_LIMIT", "FLEX_HDMA_P2PSIZE", "MODELREG_REQUIRE_KNOWN_CONFIG", "ODD"):
        monkeypatch.setenv(name, "")  # recorded, so the teardown removes what the hooks set
        monkeypatch.delenv(name)
    yield
    get_model_registry()  # back to the packaged registry for the next test


def test_text_output(capsys, monkeypatch):
    monkeypatch.setenv("FLEX_HDMA_P2PSIZE", "1")
    assert main(ARGS) == 0
    out = capsys.readouterr().out
    assert f"modelreg: {GRANITE} on vllm, tp=4 (DefaultConfigurator)" in out
    assert "✓ supported runtime: cb=True tp_size=4 max_model_len=32768 max_num_seqs=32" in out
    assert "✓ VLLM_DT_MAX_BATCH_TKV_LIMIT=131072" in out
    assert "⚠ FLEX_HDMA_P2PSIZE=1 (set by the user; default: 268435456)" in out
    assert "✓ num_gpu_blocks_override=8192" in out
    # 40 layers x 2 KV heads/GPU (8 / TP 4) x 128 head_dim x 2 (K and V) x 2 bytes = 40960
    assert "KV cache: 40960 bytes/token/GPU" in out
    assert (
        "server flags: --num-gpu-blocks-override 8192 --max-num-batched-tokens 1024 --enable-chunked-prefill"
        in out
    )
    assert os.environ["FLEX_HDMA_P2PSIZE"] == "1"
    assert "VLLM_DT_MAX_BATCH_TKV_LIMIT" not in os.environ  # display only


def test_json_output(capsys):
    assert main([*ARGS, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == GRANITE and data["tp_size"] == 4
    assert {e["name"]: e["applied"] for e in data["env_vars"]} == {
        "VLLM_DT_MAX_BATCH_TKV_LIMIT": "131072",
        "FLEX_HDMA_P2PSIZE": "268435456",
    }
    assert data["kv_geometry"]["kv_bytes_per_token_per_gpu"] == 40960
    assert data["runtime"]["supported"] is True


def test_transfer_plan_shown_when_the_entry_has_one(capsys):
    assert main(["configure", "meta-llama/Llama-3.1-8B-Instruct", "--tp", "4", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    plan = data["transfer_plan"]
    assert plan["io_size"] * plan["batch_size"] == plan["total_buffer_size"]


def test_env_output_lines(capsys):
    assert main([*ARGS, "--format", "env"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "export VLLM_DT_MAX_BATCH_TKV_LIMIT=131072" in out
    assert all(line.startswith(("export ", "#")) for line in out)


def test_output_file(tmp_path, capsys):
    target = tmp_path / "out.json"
    assert main([*ARGS, "--format", "json", "--output", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(target.read_text())["model"] == GRANITE


def test_unsupported_runtime_is_reported_not_fatal(capsys):
    assert main([*ARGS[:-1], "64"]) == 0
    out = capsys.readouterr().out
    assert "⚠ unsupported runtime (tp_size=4 max_model_len=32768 max_num_seqs=64); nearest supported:" in out


def test_warmup_shapes(capsys):
    assert main(["configure", GRANITE, "--tp", "1", "--warmup_shapes", "2048,1024,16"]) == 0
    assert "✓ supported runtime: cb=False tp_size=1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [*ARGS, "--strict"],
            "MODELREG_REQUIRE_KNOWN_CONFIG=1: nothing was applied because FLEX_HDMA_P2PSIZE is '1'",
        ),
        (
            ["configure", GRANITE],
            "--tp is required: ibm-granite/granite-3.3-8b-instruct declares TP sizes 1, 4",
        ),
        (["configure", GRANITE, "--tp", "0"], "--tp must be a positive integer, found 0"),
        (["configure", GRANITE, "--tp", "1", "--warmup_shapes", "2048,16"], "--warmup_shapes expects"),
        (["configure", GRANITE, "--tp", "4", "--backend", "trt"], "argument --backend: invalid choice"),
        (["configure", "no-such-org/no-such-model", "--tp", "1"], "no-such-org/no-such-model"),
    ],
)
def test_bad_input_exits_2(capsys, monkeypatch, argv, message):
    monkeypatch.setenv("FLEX_HDMA_P2PSIZE", "1")
    with pytest.raises(SystemExit) if "invalid choice" in message else _no_raise() as raised:
        code = main(argv)
    if raised is not None and hasattr(raised, "value"):
        code = raised.value.code
    assert code == 2
    assert message in capsys.readouterr().err


class _no_raise:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_tp_defaults_to_the_entrys_only_size(capsys):
    assert main(["configure", "sentence-transformers/all-roberta-large-v1"]) == 0
    out = capsys.readouterr().out
    assert "on vllm, tp=1" in out
    assert "✓ supported runtime: cb=False tp_size=1 warmup_shapes=[[128, 0, 8]]" in out
    assert "KV cache: none (encoder)" in out


def test_tp_alias_and_dashed_flags(capsys):
    assert (
        main(["configure", GRANITE, "--tp_size", "4", "--max-model-len", "32768", "--max-num-seqs", "32"])
        == 0
    )
    assert "✓ supported runtime" in capsys.readouterr().out


def registry_file(tmp_path, configurator: str | None = None) -> str:
    lines = [
        "version: 1",
        "models:",
        "  test/granite:",
        "    architecture: {model_type: granite, num_hidden_layers: 40, vocab_size: 49159}",
        *([f"    configurator: {configurator}"] if configurator else []),
        "    supported_configs:",
        "      - {cb: true, tp_size: 4, max_model_len: 8192, max_num_seqs: 8}",
        "    device_configs:",
        "      4:",
        "        env_vars:",
        r'''          ODD: "it's a \"quoted\" $HOME value; with `ticks` and\nnewline"''',
        "          PLAIN: 42",
    ]
    path = tmp_path / "models.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_bad_configurator_reference_names_file_line_and_key(tmp_path, capsys):
    path = registry_file(tmp_path, "no_such_module_xyz:Nope")
    assert main(["configure", GRANITE, "--tp", "4", "--config", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'modelreg configure: error: {path}:5:5: models."test/granite".configurator: ')
    assert "no_such_module_xyz" in err


def test_env_format_round_trips_through_sh(tmp_path):
    """eval of the export lines in a real /bin/sh gives exactly the declared values."""
    path = registry_file(tmp_path)
    env = {"PATH": os.environ["PATH"], "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    command = f'eval "$({MODELREG} configure {GRANITE} --tp 4 --config {path} --format env)" && env -0'
    proc = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = dict(item.split("=", 1) for item in proc.stdout.decode().split("\0") if "=" in item)
    assert seen["ODD"] == 'it\'s a "quoted" $HOME value; with `ticks` and\nnewline'
    assert seen["PLAIN"] == "42"


def test_real_subprocess_run(tmp_path):
    env = {"PATH": os.environ["PATH"], "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        [str(MODELREG), *ARGS],
        env={**env, "FLEX_HDMA_P2PSIZE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "⚠ FLEX_HDMA_P2PSIZE=1 (set by the user; default: 268435456)" in proc.stdout
    bad = subprocess.run(
        [str(MODELREG), "configure", GRANITE, "--tp", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "argument --tp/--tp_size/--tp-size: invalid int value: 'x'" in bad.stderr


def test_zero_batch_warmup_shape_is_refused(capsys, offline_hf):
    assert main(["configure", GRANITE, "--tp", "1", "--warmup_shapes", "2048,0,0"]) == 2
    assert capsys.readouterr().err == (
        "modelreg configure: error: --warmup_shapes expects prompt_len,new_tokens,batch_size "
        "(integers >= 1, 0, 1), found '2048,0,0'\n"
    )


def test_output_onto_a_directory_is_exit_2(capsys, offline_hf, tmp_path):
    assert main(["configure", GRANITE, "--tp", "4", "--output", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"modelreg configure: error: --output {tmp_path}: expected a file path, found a directory\n"
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".modelreg-")] == []
