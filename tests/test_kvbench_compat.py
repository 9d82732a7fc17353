"""KVBench compatibility: the seed's published numbers, and each known difference in both modes.

DeepSeek-R1 in KVBench's arithmetic: latent 512 + 64 = 576 elements, fp8 -> 576 B per token
and layer; KV of ISL 10000 = 576 × 61 × 10000 = 351,360,000 B.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import EXAMPLES, hf_config_dict

from configurators.transfer import SpecError, plan_transfer
from registry.errors import ConfigError
from registry.kv_geometry import kv_geometry
from registry.kvbench_model import KVBenchModel, is_kvbench_model, load_kvbench_model
from registry.model_config import TransferSpec

R1_YAML = EXAMPLES / "model_deepseek_r1.yaml"


def spec(**values) -> TransferSpec:
    base = {"model_quant_mode": "fp8", "kvcache_quant_mode": "fp8", "isl": 10_000, "page_size": 256}
    return TransferSpec(**{**base, **values})


SEED = [
    # block, PP 16: ceil(61/16) = 4 layers × 576 × 256 = 589,824; ceil(351,360,000 / 589,824 × 10) = 5958.
    ({"pp_size": 16, "access_pattern": "block", "num_requests": 10}, 589_824, 5958),
    # layer, PP 16: 576 × 256 = 147,456; ceil(351,360,000 / 147,456 × 10) = ceil(23828.1) = 23829.
    ({"pp_size": 16, "access_pattern": "layer", "num_requests": 10}, 147_456, 23_829),
    # block, PP 32, 100 requests: ceil(61/32) = 2 × 576 × 256 = 294,912; ceil(1191.4 × 100) = 119,141.
    ({"pp_size": 32, "access_pattern": "block", "num_requests": 100}, 294_912, 119_141),
    # block-tp1-pp8 (1 request): ceil(61/8) = 8 × 576 × 256 = 1,179,648; ceil(297.85) = 298.
    ({"pp_size": 8, "access_pattern": "block", "num_requests": 1}, 1_179_648, 298),
]


@pytest.mark.parametrize(("values", "io_size", "batch"), SEED)
def test_seed_numbers_from_the_kvbench_yaml(values, io_size, batch):
    plan = plan_transfer(load_kvbench_model(str(R1_YAML)), spec(tp_size=1, **values))
    assert plan.compat == "kvbench"
    assert (plan.io_size, plan.batch_size) == (io_size, batch)


@pytest.mark.parametrize(("values", "io_size", "batch"), SEED)
@pytest.mark.parametrize("compat", ["kvbench", "modelreg"])
def test_seed_numbers_from_the_hf_config(values, io_size, batch, compat):
    """At TP 1 with fp8 both modes agree with the seed for DeepSeek-R1."""
    plan = plan_transfer(hf_config_dict("deepseek-ai/DeepSeek-R1"), spec(tp_size=1, **values), compat=compat)
    assert (plan.io_size, plan.batch_size) == (io_size, batch)


def test_iosize_is_one_token():
    # block-tp1-pp8: 8 layers × 576 B × page 1 = 4608 ("IO Size per GPU: 4608").
    plan = plan_transfer(
        load_kvbench_model(str(R1_YAML)), spec(pp_size=8, access_pattern="block", num_requests=1)
    )
    assert plan.io_size_per_token == 4608


def test_difference_mla_divided_by_tp():
    r1 = hf_config_dict("deepseek-ai/DeepSeek-R1")
    values = spec(tp_size=8, pp_size=1, access_pattern="block", num_requests=1, page_size=1)
    # KVBench: 576 / 8 = 72 B per layer and GPU, × 61 layers = 4392.
    assert plan_transfer(r1, values, compat="kvbench").io_size == 4392
    # Exact: every TP rank holds the whole latent: 576 × 61 = 35136.
    assert plan_transfer(r1, values).io_size == 35_136


def test_difference_integer_division_by_tp_without_replication():
    llama = hf_config_dict("meta-llama/Llama-3.1-8B")
    values = spec(tp_size=16, access_pattern="layer", num_requests=1, page_size=1)
    # KVBench: 8 heads × 128 × 2 × 1 B = 2048 per layer; int(2048 / 16) = 128.
    assert plan_transfer(llama, values, compat="kvbench").io_size == 128
    # Exact: max(1, 8 // 16) = 1 head per GPU (replicated): 1 × 2 × 128 × 1 B = 256.
    assert plan_transfer(llama, values).io_size == 256


def test_difference_fractional_layers_per_stage_for_gqa():
    llama = hf_config_dict("meta-llama/Llama-3.1-70B")
    values = spec(tp_size=1, pp_size=3, access_pattern="block", num_requests=1, page_size=1)
    # KVBench: int(2048 × 80 / 3) = int(54613.3) = 54613.
    assert plan_transfer(llama, values, compat="kvbench").io_size == 54_613
    # Exact: vLLM splits 80 as (26, 27, 27); the busiest stage has 27 × 2048 = 55296.
    assert plan_transfer(llama, values).io_size == 55_296


def test_difference_sliding_windows_ignored():
    oss = hf_config_dict("openai/gpt-oss-20b")
    values = spec(isl=8192, page_size=16, access_pattern="layer", num_requests=1)
    # One layer's page: 8 KV heads × 64 × 2 × 1 B = 1024 × 16 = 16384 in both modes.
    kvbench = plan_transfer(oss, values, compat="kvbench")
    exact = plan_transfer(oss, values)
    assert kvbench.io_size == exact.io_size == 16_384
    # KVBench: 24 layers × 1024 × 8192 tokens / 16384 = 12288 IOs.
    assert kvbench.batch_size == 12_288
    # Exact: 12 full × 8192 + 12 sliding × 128 = 99840 layer-tokens × 1024 B / 16384 = 6240.
    assert exact.batch_size == 6240


def test_difference_gqa_sized_by_model_quant_mode():
    llama = hf_config_dict("meta-llama/Llama-3.1-8B")
    values = spec(model_quant_mode="fp16", kvcache_quant_mode="fp8", num_requests=1, access_pattern="layer")
    # KVBench: 32 × 8 × 128 × 2 × 2 B (fp16 weights) = 131072 per token.
    assert plan_transfer(llama, values, compat="kvbench").kv_bytes_per_token == 131_072
    # Exact: the fp8 KV cache: 32 × 8 × 128 × 2 × 1 B = 65536.
    assert plan_transfer(llama, values).kv_bytes_per_token == 65_536


def test_kvbench_precision_table_is_strict():
    with pytest.raises(SpecError, match="KVBench supports kvcache_quant_mode fp8, int8, fp16, bfloat16"):
        plan_transfer(load_kvbench_model(str(R1_YAML)), spec(kvcache_quant_mode="bf16", num_requests=1))
    # Natively bf16 is fine: 576 × 2 B.
    plan = plan_transfer(load_kvbench_model(str(R1_YAML)), spec(kvcache_quant_mode="bf16"), compat="modelreg")
    assert plan.kv_bytes_per_token == 61 * 576 * 2


# KVBench YAML -> the same per-layer geometry as the model's own HF config (fp8).
PAIRS = [
    ("model_deepseek_r1.yaml", "deepseek-ai/DeepSeek-R1", 576),  # 512 + 64 latent
    ("model_llama_3_1_70b.yaml", "meta-llama/Llama-3.1-70B", 2048),  # 64 / 8 = 8 heads × 2 × 128
    ("model_llama_3_1_8b.yaml", "meta-llama/Llama-3.1-8B", 2048),  # 32 / 4 = 8 heads × 2 × 128
    ("model_qwen3_235b_a22b.yaml", "Qwen/Qwen3-235B-A22B", 1024),  # 4 × 2 × 128
    ("model_qwen3_8b.yaml", "Qwen/Qwen3-8B", 2048),  # 8 × 2 × 128
    ("model_gpt_oss_120b.yaml", "openai/gpt-oss-120b", 1024),  # 8 × 2 × 64
    ("model_gpt_oss_20b.yaml", "openai/gpt-oss-20b", 1024),
]


@pytest.mark.parametrize(("yaml_name", "model", "per_layer"), PAIRS)
def test_kvbench_yaml_gives_the_same_geometry(yaml_name, model, per_layer):
    arch = load_kvbench_model(str(EXAMPLES / yaml_name))
    from_yaml = kv_geometry(arch.to_hf_config(), kv_dtype="fp8")
    from_hf = kv_geometry(hf_config_dict(model), kv_dtype="fp8")
    assert from_yaml.kv_bytes_per_token_per_layer == from_hf.kv_bytes_per_token_per_layer == per_layer
    assert from_yaml.num_layers == from_hf.num_layers


def test_shipped_examples_match_the_shared_kvbench_files():
    shared = Path("/work/shared/kvbench_models")
    if not shared.is_dir():
        pytest.skip("the shared KVBench model directory is not present")
    for path in shared.glob("*.yaml"):
        assert (EXAMPLES / path.name).read_bytes() == path.read_bytes()


def test_is_kvbench_model():
    assert is_kvbench_model({"model_name": "X", "num_layers": 2})
    assert not is_kvbench_model(hf_config_dict("meta-llama/Llama-3.1-8B"))
    assert not is_kvbench_model({"strategy": {"tp_size": 1}})


def test_bad_kvbench_yaml_names_file_line_and_key(tmp_path):
    path = tmp_path / "model_bad.yaml"
    path.write_text("model_name: 'BAD'\nnum_layers: 0\nnum_kv_heads: 8\nquery_head_dim: 64\n")
    with pytest.raises(ConfigError) as error:
        load_kvbench_model(str(path))
    text = str(error.value)
    assert f"{path}:2:1: num_layers: expected a positive integer, found 0" in text
    assert f"{path}:4:1: query_head_dim: unknown field" in text
    assert "query_head_dimension: required field is missing" in text


def test_kvbench_batch_uses_float_arithmetic():
    # KVBench multiplies the float ratio by the request count before ceil; the exact mode uses integers.
    arch = KVBenchModel(model_name="T", num_layers=3, kv_heads=1, head_dim=1)
    # kv(isl=1) = 3 × 1 × 1 × 2 × 1 = 6 B; io (layer, page 1, tp 1) = 2; ceil(6 / 2 × 7) = 21.
    plan = plan_transfer(arch, spec(isl=1, page_size=1, access_pattern="layer", num_requests=7))
    assert plan.batch_size == math.ceil(6 / 2 * 7) == 21


@pytest.mark.parametrize("compat", ["kvbench", "modelreg"])
def test_per_gpu_kv_per_token_does_not_depend_on_access_pattern(compat):
    """The access pattern sizes one IO; the KV a GPU holds per token is the stage's either way."""
    # Llama-3.1-8B at TP 1, PP 1, fp8: 32 layers × 8 KV heads × (128 + 128) × 1 B = 65,536 B per token.
    source = (
        load_kvbench_model(str(EXAMPLES / "model_llama_3_1_8b.yaml"))
        if compat == "kvbench"
        else (hf_config_dict("meta-llama/Llama-3.1-8B"))
    )
    values = {"tp_size": 1, "pp_size": 1, "num_requests": 1, "model_quant_mode": "fp8"}
    block = plan_transfer(source, spec(access_pattern="block", **values), compat=compat)
    layer = plan_transfer(source, spec(access_pattern="layer", **values), compat=compat)
    assert block.kv_bytes_per_token_per_gpu == layer.kv_bytes_per_token_per_gpu == 65_536
