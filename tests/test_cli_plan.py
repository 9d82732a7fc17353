"""``modelreg kvcache | iosize | plan`` end to end, on the shipped examples and real HF configs."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from conftest import EXAMPLES, MODELREG, ROOT

from registry.cli import main

R1 = str(EXAMPLES / "model_deepseek_r1.yaml")
SEP = "=" * 80


def seed_block(config: str, requests: int, pp: int, batch: int, block: int) -> str:
    """The seed's published plan output for DeepSeek-R1, GDS from GPU (ISL 10000, page 256, TP 1)."""
    return (
        f"{SEP}\nModel Config: {config}\nISL: 10000 tokens\nPage Size: 256\n"
        f"Requests: {requests}\nTP: 1\nPP: {pp}\n"
        f"{SEP}\nnixlbench \\\n    --backend GDS \\\n    --max_batch_size {batch} \\\n"
        f"    --max_block_size {block} \\\n    --start_batch_size {batch} \\\n"
        f"    --start_block_size {block} \\\n"
        "    --target_seg_type VRAM\n\n"
    )


GDS = ["--backend", "GDS", "--source", "gpu", "--etcd-endpoint", "http://localhost:2379"]


def test_seed_block_pp16(capsys):
    config = "./examples/block-tp1-pp16.yaml"
    assert main(["plan", "--model", R1, "--model_config", str(ROOT / config), *GDS]) == 0
    out = capsys.readouterr().out
    # ceil(61/16) = 4 × 576 × 256 = 589824; ceil(576 × 61 × 10000 / 589824 × 10) = 5958.
    assert out == seed_block(str(ROOT / config), 10, 16, 5958, 589_824)


def test_seed_layer_pp16(capsys):
    config = str(EXAMPLES / "layer-tp1-pp16.yaml")
    assert main(["plan", "--model", R1, "--model_config", config, *GDS]) == 0
    # 576 × 256 = 147456; ceil(2382.8 × 10) = 23829.
    assert capsys.readouterr().out == seed_block(config, 10, 16, 23_829, 147_456)


def test_seed_overrides_pp32_100_requests(capsys):
    config = str(EXAMPLES / "block-tp1-pp8.yaml")
    assert (
        main(["plan", "--model", R1, "--model_config", config, *GDS, "--pp", "32", "--num-requests", "100"])
        == 0
    )
    # ceil(61/32) = 2 × 576 × 256 = 294912; ceil(1191.4 × 100) = 119141.
    assert capsys.readouterr().out == seed_block(config, 100, 32, 119_141, 294_912)


def test_seed_kvcache(capsys):
    assert main(["kvcache", "--model", R1, "--model_config", str(EXAMPLES / "block-tp1-pp8.yaml")]) == 0
    out = capsys.readouterr().out
    # 8 layers × 576 × 256 = 1179648 B = 1.125 MiB -> "1.12 MB"; ceil(351360000 / 1179648) = 298.
    assert out.startswith(
        "Model                  : DEEPSEEK_R1\nInput Sequence Length  : 10000\n"
        "Batch Size             : 298\nIO Size                : 1.12 MB\n"
    )


def test_seed_iosize(capsys):
    assert main(["iosize", "--model", R1, "--model_config", str(EXAMPLES / "block-tp1-pp8.yaml")]) == 0
    # One token: 8 layers × 576 B.
    assert capsys.readouterr().out == "IO Size per GPU: 4608\n"


def test_hf_model_id_reproduces_the_seed(capsys, offline_hf):
    config = str(EXAMPLES / "block-tp1-pp16.yaml")
    assert main(["plan", "--model", "deepseek-ai/DeepSeek-R1", "--model_config", config, *GDS]) == 0
    assert capsys.readouterr().out == seed_block(config, 10, 16, 5958, 589_824)


def test_iosize_llama_layer_tp8_pp4(capsys, offline_hf):
    args = [
        "iosize",
        "--model",
        "meta-llama/Llama-3.1-70B",
        "--model_config",
        str(EXAMPLES / "layer-tp8-pp4.yaml"),
    ]
    assert main(args) == 0
    # fp8 KV: 8 // 8 = 1 head × 2 × 128 × 1 B = 256 B per token and layer.
    assert capsys.readouterr().out == "IO Size per GPU: 256\n"


def test_compat_kvbench_on_hf_config(capsys, offline_hf):
    args = [
        "iosize",
        "--model",
        "deepseek-ai/DeepSeek-R1",
        "--model_config",
        str(EXAMPLES / "block-tp8-pp1.yaml"),
    ]
    assert main([*args, "--compat", "kvbench"]) == 0
    # KVBench divides the MLA latent by TP: 576 / 8 × 61 = 4392.
    assert capsys.readouterr().out == "IO Size per GPU: 4392\n"
    assert main(args) == 0
    # Exact: 576 × 61 = 35136.
    assert capsys.readouterr().out == "IO Size per GPU: 35136\n"


def test_glob_csv_records_with_kvbench_prefixes(capsys):
    assert main(["plan", "--model", R1, "--model_configs", str(EXAMPLES / "*.yaml"), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    # Nine strategy files; the model_*.yaml architectures in the same folder are skipped.
    assert len(rows) == 9
    header = list(rows[0])
    assert header == sorted(header)
    row = next(r for r in rows if r["config_file"].endswith("block-tp1-pp16.yaml"))
    assert (row["max_block_size"], row["max_batch_size"], row["model"]) == ("589824", "5958", "DEEPSEEK_R1")
    assert (row["model_strategy_pp_size"], row["model_runtime_isl"], row["model_system_page_size"]) == (
        "16",
        "10000",
        "256",
    )
    assert row["etcd_endpoints"] == "http://localhost:2379"


def test_json_lists_all_flags(capsys, tmp_path):
    out_file = tmp_path / "plan.json"
    args = [
        "plan",
        "--model",
        R1,
        "--model_config",
        str(EXAMPLES / "layer-tp1-pp16.yaml"),
        "--format",
        "json",
    ]
    assert main([*args, "--output", str(out_file)]) == 0
    assert capsys.readouterr().out == ""
    (record,) = json.loads(out_file.read_text())
    assert record["max_block_size"] == 147_456
    assert record["num_iter"] == 1000
    assert record["model_system_access_pattern"] == "layer"


def test_kvcache_json(capsys, offline_hf):
    args = [
        "kvcache",
        "--model",
        "openai/gpt-oss-20b",
        "--model_config",
        str(EXAMPLES / "layer-tp1-pp1.yaml"),
    ]
    assert main([*args, "--format", "json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    # fp8: 8 heads × 2 × 64 = 1024 B/layer × 16 = 16384;
    # KV: (12 full × 8192 + 12 sliding × 128) = 99840 layer-tokens × 1024 B × 10 requests; / 16384 = 62400.
    assert record["io_size"] == 16_384
    assert record["kv_bytes_total"] == 99_840 * 1024 * 10
    assert record["batch_size"] == 62_400


def test_errors_are_per_file_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy:\n  tp_size: 0\nruntime:\n  isl: 10\nsystem:\n  access_pattern: stripe\n")
    args = [
        "plan",
        "--model",
        R1,
        "--model_config",
        str(bad),
        "--model_configs",
        str(tmp_path / "none-*.yaml"),
    ]
    args += ["--model_configs", str(EXAMPLES / "block-tp1-pp1*.yaml")]
    assert main(args) == 2
    captured = capsys.readouterr()
    # The good files still print.
    assert captured.out.count("Model Config:") == 2
    assert (
        f"modelreg plan: error: {bad}:2:3: strategy.tp_size: expected a number >= 1, found 0" in captured.err
    )
    assert (
        f"{bad}:6:3: system.access_pattern: expected one of 'block', 'layer', found 'stripe'" in captured.err
    )
    assert "none-*.yaml' matched no files" in captured.err


def test_missing_config_file(capsys, tmp_path):
    missing = str(tmp_path / "nope.yaml")
    assert main(["plan", "--model", R1, "--model_config", missing]) == 2
    assert f"{missing}: config file not found" in capsys.readouterr().err


def test_value_error_points_at_the_file_line(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("strategy:\n  kvcache_quant_mode: fp4\nruntime:\n  isl: 10\n")
    assert main(["kvcache", "--model", R1, "--model_config", str(config), "--compat", "modelreg"]) == 2
    assert f"{config}:2:3: strategy.kvcache_quant_mode: kvcache_quant_mode 'fp4'" in capsys.readouterr().err
    assert main(["kvcache", "--model", R1, "--model_config", str(config)]) == 2
    assert "KVBench supports kvcache_quant_mode fp8, int8, fp16, bfloat16" in capsys.readouterr().err


def test_missing_isl_names_the_flag(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("strategy:\n  tp_size: 1\n")
    assert main(["plan", "--model", R1, "--model_config", str(config)]) == 2
    assert f"{config}: isl is not set (set runtime.isl or pass --isl)" in capsys.readouterr().err
    assert main(["plan", "--model", R1, "--model_config", str(config), "--isl", "100"]) == 0
    capsys.readouterr()
    assert main(["plan", "--model", R1, "--model_config", str(config), "--isl", "0"]) == 2
    assert f"{config}: --isl: isl must be an integer >= 1, found 0" in capsys.readouterr().err


def test_impossible_source_destination(capsys):
    args = ["plan", "--model", R1, "--model_config", str(EXAMPLES / "block-tp1-pp1.yaml"), "--source", "file"]
    assert main(args) == 2
    assert "--backend UCX moves data between memory segments" in capsys.readouterr().err
    # kvcache and iosize size the KV only, so the nixlbench pairing does not stop them.
    assert main(["iosize", *args[1:]]) == 0
    # PP 1: all 61 layers × 576 B.
    assert capsys.readouterr().out == "IO Size per GPU: 35136\n"


def test_usage_errors(capsys, tmp_path):
    assert main(["plan", "--model_config", str(EXAMPLES / "block-tp1-pp1.yaml")]) == 2
    assert "--model is required" in capsys.readouterr().err
    assert main(["plan", "--model", R1]) == 2
    assert "either --model_config or --model_configs is required" in capsys.readouterr().err
    bad_model = tmp_path / "model_bad.yaml"
    bad_model.write_text("model_name: X\nnum_layers: -1\nnum_kv_heads: 8\nquery_head_dimension: 64\n")
    assert (
        main(["plan", "--model", str(bad_model), "--model_config", str(EXAMPLES / "block-tp1-pp1.yaml")]) == 2
    )
    assert f"{bad_model}:2:1: num_layers: expected a positive integer, found -1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", "--model", R1, "--access-pattern", "stripe"])
    assert exit_info.value.code == 2


def test_dash_and_snake_spellings(capsys):
    config = str(EXAMPLES / "block-tp1-pp1.yaml")
    base = ["plan", "--model", R1, "--model-config", config, "--format", "json"]
    assert (
        main([*base, "--num_iter", "10", "--etcd_endpoints", "http://127.0.0.1:2379", "--gds-filepath", "/x"])
        == 0
    )
    (record,) = json.loads(capsys.readouterr().out)
    assert (record["num_iter"], record["etcd_endpoints"], record["filepath"]) == (
        10,
        "http://127.0.0.1:2379",
        "/x",
    )


def test_scheme_tp_uses_the_config_tp(capsys):
    config = str(EXAMPLES / "block-tp8-pp4.yaml")
    assert main(["plan", "--model", R1, "--model_config", config, "--scheme", "tp", "--source", "gpu"]) == 0
    out = capsys.readouterr().out
    assert "--num_target_dev 8" in out
    assert "--initiator_seg_type VRAM" in out


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MODELREG), *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_subprocess_plan_kvcache_iosize():
    config = "./examples/block-tp1-pp16.yaml"
    done = run_cli("plan", "--model", "examples/model_deepseek_r1.yaml", "--model_config", config, *GDS)
    assert done.returncode == 0, done.stderr
    assert done.stdout == seed_block(config, 10, 16, 5958, 589_824)
    done = run_cli(
        "kvcache",
        "--model",
        "examples/model_deepseek_r1.yaml",
        "--model_config",
        "examples/block-tp1-pp8.yaml",
    )
    assert "Batch Size             : 298" in done.stdout
    done = run_cli(
        "iosize",
        "--model",
        "examples/model_deepseek_r1.yaml",
        "--model_config",
        "examples/block-tp1-pp8.yaml",
    )
    assert done.stdout == "IO Size per GPU: 4608\n"
    done = run_cli("plan", "--model", "examples/model_deepseek_r1.yaml", "--model_config", "nope.yaml")
    assert done.returncode == 2
    assert done.stderr == "modelreg plan: error: nope.yaml: config file not found\n"


def test_kvbench_yaml_plan_does_not_import_transformers():
    code = (
        "import sys\n"
        "from registry.cli import main\n"
        "rc = main(['plan', '--model', 'examples/model_deepseek_r1.yaml',\n"
        "           '--model_configs', 'examples/*.yaml'])\n"
        "assert rc == 0, rc\n"
        "heavy = [m for m in ('transformers', 'torch', 'numpy', 'jsonschema', 'nixl') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr


def test_nixlbench_flag_from_the_cli_is_checked(capsys):
    config = str(EXAMPLES / "block-tp1-pp1.yaml")
    assert main(["plan", "--model", R1, "--model_config", config, "--num_threads", "0"]) == 2
    assert capsys.readouterr().err == (
        f"modelreg plan: error: {config}: --num_threads expects a positive integer, found 0\n"
    )


def test_config_file_nixlbench_section_and_sections_are_checked(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("runtime: {isl: 100}\nnixlbench:\n  num_threads: lots\nsytem: {page_size: 16}\n")
    assert main(["plan", "--model", R1, "--model_config", str(config)]) == 2
    assert capsys.readouterr().err == (
        f"modelreg plan: error: {config}:3:3: nixlbench.num_threads: expected an integer, found 'lots'\n"
        f"{config}:4:1: sytem: unknown key 'sytem'; did you mean 'system'?\n"
    )
