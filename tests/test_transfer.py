"""Transfer plans from geometry + spec, and a registry entry's plan per TP size."""

from __future__ import annotations

import pytest
from conftest import hf_config_dict

from configurators.transfer import (
    SpecError,
    merge_specs,
    plan_for_device,
    plan_transfer,
    spec_from_sections,
)
from registry.errors import UsageError
from registry.kv_geometry import kv_geometry
from registry.model_config import ArchitecturePattern, DeviceConfig, ModelConfig, TransferSpec

LLAMA_70B = "meta-llama/Llama-3.1-70B"


def test_block_plan_for_gqa_on_tp8_pp4():
    spec = TransferSpec(
        tp_size=8, pp_size=4, kvcache_quant_mode="fp8", isl=8192, num_requests=10, page_size=16
    )
    plan = plan_transfer(hf_config_dict(LLAMA_70B), spec, model_name=LLAMA_70B)
    # Per GPU: 8 // 8 = 1 KV head × 2 × 128 × 1 B = 256 B per layer; 80 / 4 = 20 layers; × 16 tokens.
    assert plan.io_size == 256 * 20 * 16 == 81_920
    # Model KV: 80 × 8 × 2 × 128 × 1 B = 163840 B/token; × 8192 × 10 requests / 81920 = 163840.
    assert plan.kv_bytes_total == 163_840 * 8192 * 10
    assert plan.batch_size == 163_840
    assert plan.total_buffer_size == 81_920 * 163_840
    assert plan.layers_per_io == 20
    assert plan.to_dict()["model"] == LLAMA_70B


def test_layer_plan_is_one_layer():
    spec = TransferSpec(tp_size=8, pp_size=4, isl=8192, num_requests=10, page_size=16, access_pattern="layer")
    plan = plan_transfer(hf_config_dict(LLAMA_70B), spec)
    # "auto" = bf16: 1 head × 2 × 128 × 2 B × 16 tokens = 8192.
    assert (plan.io_size, plan.kvcache_quant_mode, plan.dtype_bytes) == (8192, "auto", 2)


def test_geometry_input_is_relaid_out():
    geometry = kv_geometry(hf_config_dict(LLAMA_70B))
    spec = TransferSpec(tp_size=8, pp_size=4, isl=100, page_size=16)
    assert plan_transfer(geometry, spec).io_size == plan_transfer(hf_config_dict(LLAMA_70B), spec).io_size


def test_sglang_backend_uses_sglang_split():
    r1 = hf_config_dict("deepseek-ai/DeepSeek-R1")
    spec = TransferSpec(pp_size=16, isl=10, page_size=1, kvcache_quant_mode="fp8")
    # The busiest stage has ceil(61/16) = 4 layers under both rules.
    assert (
        plan_transfer(r1, spec).io_size
        == plan_transfer(r1, TransferSpec(**{**spec.__dict__, "backend": "SGLANG"})).io_size
        == 4 * 576
    )


def test_defaults_and_missing_isl():
    with pytest.raises(SpecError, match="isl is not set"):
        plan_transfer(hf_config_dict(LLAMA_70B), TransferSpec())
    plan = plan_transfer(hf_config_dict(LLAMA_70B), TransferSpec(isl=16))
    assert (plan.tp_size, plan.pp_size, plan.num_requests, plan.page_size, plan.access_pattern) == (
        1,
        1,
        1,
        16,
        "block",
    )


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"isl": 0}, "isl"),
        ({"isl": 10, "page_size": -1}, "page_size"),
        ({"isl": 10, "access_pattern": "stripe"}, "access_pattern"),
        ({"isl": 10, "kvcache_quant_mode": "fp4"}, "kvcache_quant_mode"),
        ({"isl": 10, "tp_size": True}, "tp_size"),
    ],
)
def test_bad_spec_values_name_the_field(values, field):
    with pytest.raises(SpecError) as error:
        plan_transfer(hf_config_dict(LLAMA_70B), TransferSpec(**values))
    assert error.value.field == field
    assert field in str(error.value)


def test_encoder_has_nothing_to_transfer():
    with pytest.raises(UsageError, match="no KV cache to transfer"):
        plan_transfer(hf_config_dict("intfloat/multilingual-e5-large"), TransferSpec(isl=10))


def test_pp_beyond_layers_is_an_error():
    with pytest.raises(UsageError, match="--pp 5 is invalid for a model with 4 layers"):
        plan_transfer(
            hf_config_dict("ibm-ai-platform/micro-g3.3-8b-instruct-1b"), TransferSpec(isl=10, pp_size=5)
        )


def test_unknown_compat():
    with pytest.raises(UsageError, match="--compat must be one of modelreg, kvbench"):
        plan_transfer(hf_config_dict(LLAMA_70B), TransferSpec(isl=10), compat="other")


def test_spec_from_sections_reads_kvbench_layout():
    spec = spec_from_sections(
        {
            "strategy": {"tp_size": 2, "kvcache_quant_mode": "fp8"},
            "runtime": {"isl": 100, "osl": 10, "num_requests": 3},
            "system": {
                "hardware": "H100",
                "backend": "SGLANG",
                "access_pattern": "layer",
                "page_size": 32,
                "source": "gpu",
            },
            "nixlbench": {"backend": "GDS"},
        }
    )
    assert (spec.tp_size, spec.isl, spec.num_requests, spec.page_size, spec.access_pattern) == (
        2,
        100,
        3,
        32,
        "layer",
    )
    assert spec.nixlbench == {"backend": "GDS", "source": "gpu"}


def _entry(transfer=None, device_transfer=None):
    device = DeviceConfig(tp_size=4, transfer=device_transfer)
    model = ModelConfig(
        name="meta-llama/Llama-3.1-70B",
        architecture=ArchitecturePattern("llama"),
        device_configs={4: device},
        transfer=transfer,
    )
    return model, device


def test_plan_for_device_merges_and_takes_tp_from_the_device():
    model, device = _entry(
        TransferSpec(isl=8192, page_size=16, num_requests=10, nixlbench={"backend": "UCX"}),
        TransferSpec(kvcache_quant_mode="fp8", nixlbench={"source": "gpu"}),
    )
    plan = plan_for_device(hf_config_dict(LLAMA_70B), model, device)
    # TP 4: 8 // 4 = 2 heads × 2 × 128 × 1 B = 512 per layer; 80 layers × 16 tokens.
    assert (plan.tp_size, plan.io_size) == (4, 512 * 80 * 16)
    assert plan.nixlbench == {"backend": "UCX", "source": "gpu"}
    assert plan.model == "meta-llama/Llama-3.1-70B"


def test_plan_for_device_without_transfer_is_none():
    model, device = _entry()
    assert plan_for_device(hf_config_dict(LLAMA_70B), model, device) is None


def test_merge_specs():
    assert merge_specs(None, None) is None
    top = TransferSpec(isl=1)
    assert merge_specs(None, top) is top
    merged = merge_specs(
        TransferSpec(isl=5, osl=2, nixlbench={"a": 1}), TransferSpec(isl=7, nixlbench={"b": 2})
    )
    assert (merged.isl, merged.osl, dict(merged.nixlbench)) == (7, 2, {"a": 1, "b": 2})
