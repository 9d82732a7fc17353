"""Targets: where settings land in vLLM's VllmConfig, SGLang's ServerArgs and EngineSettings.

vLLM and SGLang cannot be installed or run on these machines (no GPU), so the
adapters are tested against minimal objects with the same attribute paths as
``VllmConfig`` (``parallel_config``, ``model_config``, ``scheduler_config``,
``cache_config``) and ``ServerArgs`` (flat fields). The HF config inside is a
real transformers config built from a real ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from conftest import hf_config_path

from configurators.default import DefaultConfigurator
from configurators.engine_args import backend_args
from configurators.summary import CONFLICT, SKIPPED
from configurators.targets import EngineSettings, SglangTarget, VllmTarget, chunked_prefill_args
from registry.hf_config import load_hf_config
from registry.model_config import ModelConfig

ENTRY = {
    "architecture": {"model_type": "granite"},
    "backends": {
        "vllm": {"engine_args": {"kv_cache_dtype": "fp8", "preemption_mode": "swap"}},
        "sglang": {"engine_args": {"kv_cache_dtype": "fp8"}, "sampling_args": {"temperature": 0.7}},
    },
    "device_configs": {
        4: {"num_gpu_blocks_override": 8192, "chunked_prefill_config": {"max_num_batched_tokens": 1024}}
    },
}


def fake_vllm_config(**scheduler):
    """Same attribute paths as vllm.config.VllmConfig, with vLLM's defaults filled in."""
    hf = load_hf_config(str(hf_config_path("ibm-granite/granite-3.3-8b-instruct")))
    return SimpleNamespace(
        parallel_config=SimpleNamespace(tensor_parallel_size=4, pipeline_parallel_size=1, world_size=4),
        model_config=SimpleNamespace(
            model="ibm-granite/granite-3.3-8b-instruct",
            max_model_len=32768,
            hf_config=hf,
            override_generation_config={},
        ),
        scheduler_config=SimpleNamespace(
            max_num_seqs=32,
            max_num_batched_tokens=scheduler.get("max_num_batched_tokens", 8192),
            enable_chunked_prefill=False,
        ),
        cache_config=SimpleNamespace(
            num_gpu_blocks_override=scheduler.get("num_gpu_blocks_override"),
            cache_dtype="auto",
            block_size=16,
        ),
    )


@dataclass
class FakeServerArgs:
    """The ServerArgs fields these tests touch, with SGLang's defaults."""

    model_path: str = "ibm-granite/granite-3.3-8b-instruct"
    tp_size: int = 4
    context_length: int | None = 32768
    max_running_requests: int | None = 32
    chunked_prefill_size: int | None = 8192
    kv_cache_dtype: str = "auto"
    preferred_sampling_params: str | None = None
    trust_remote_code: bool = False


def configurator() -> DefaultConfigurator:
    c = DefaultConfigurator(ModelConfig.from_entry("ibm-granite/granite-3.3-8b-instruct", ENTRY))
    c.environ = {}
    return c


def test_vllm_target_reads_the_runtime():
    target = VllmTarget(fake_vllm_config())
    assert (target.tp_size, target.max_model_len, target.max_num_seqs) == (4, 32768, 32)
    assert target.hf_config.num_hidden_layers == 40
    assert target.model == "ibm-granite/granite-3.3-8b-instruct"


def test_vllm_target_falls_back_to_world_size():
    config = fake_vllm_config()
    config.parallel_config = SimpleNamespace(world_size=2)
    assert VllmTarget(config).tp_size == 2


def test_vllm_target_writes_through_attribute_paths():
    config = fake_vllm_config()
    summary = configurator().configure(VllmTarget(config))
    assert config.cache_config.num_gpu_blocks_override == 8192
    assert config.scheduler_config.max_num_batched_tokens == 1024
    assert config.scheduler_config.enable_chunked_prefill is True
    assert config.cache_config.cache_dtype == "fp8"
    # preemption_mode is a known arg with no VllmConfig path here: skipped, with the flag to use instead.
    skipped = {s.name: s for s in summary.section("engine")}["preemption_mode"]
    assert skipped.status == SKIPPED and "--preemption-mode" in skipped.note


def test_vllm_explicit_flag_is_kept():
    config = fake_vllm_config(max_num_batched_tokens=4096)
    summary = configurator().configure(VllmTarget(config, explicit=["max_num_batched_tokens"]))
    assert config.scheduler_config.max_num_batched_tokens == 4096
    assert {s.name: s.status for s in summary.section("engine")}["max_num_batched_tokens"] == CONFLICT


def test_vllm_default_none_value_counts_as_the_users():
    config = fake_vllm_config(num_gpu_blocks_override=100)
    summary = configurator().configure(VllmTarget(config))
    assert config.cache_config.num_gpu_blocks_override == 100
    assert [s.name for s in summary.conflicts] == ["num_gpu_blocks_override"]


def test_vllm_sampling_goes_to_override_generation_config():
    config = fake_vllm_config()
    config.model_config.override_generation_config = {"top_k": 5}
    VllmTarget(config).set_sampling({"temperature": 1.0})
    assert config.model_config.override_generation_config == {"top_k": 5, "temperature": 1.0}


def test_sglang_target_maps_fields_and_fp8():
    args = FakeServerArgs()
    target = SglangTarget(args)
    assert (target.tp_size, target.max_model_len, target.max_num_seqs) == (4, 32768, 32)
    summary = configurator().configure(target)
    assert args.kv_cache_dtype == "fp8_e4m3"
    assert args.chunked_prefill_size == 1024
    assert json.loads(args.preferred_sampling_params) == {"temperature": 0.7}
    assert {s.name: s.status for s in summary.section("engine")}["num_gpu_blocks_override"] == SKIPPED


def test_sglang_explicit_flag_is_kept():
    args = FakeServerArgs(chunked_prefill_size=2048)
    summary = configurator().configure(SglangTarget(args, explicit=["chunked_prefill_size"]))
    assert args.chunked_prefill_size == 2048
    assert [s.name for s in summary.conflicts] == ["chunked_prefill_size"]


def test_sglang_unknown_field_is_skipped():
    assert "no field 'nope'" in SglangTarget(FakeServerArgs()).unsupported("nope")


def test_engine_settings_records_without_touching_user_args():
    target = EngineSettings(backend="vllm", tp_size=4, engine_args={"enforce_eager": True})
    configurator().configure(target)
    assert target.engine_args == {"enforce_eager": True}
    assert target.applied_engine_args["max_num_batched_tokens"] == 1024


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("vllm", {"max_num_batched_tokens": 512, "enable_chunked_prefill": True}),
        ("sglang", {"chunked_prefill_size": 512}),
    ],
)
def test_chunked_prefill_names(backend, expected):
    assert chunked_prefill_args(backend, 512) == expected


def test_known_names_data_file():
    vllm, sglang = backend_args("vllm"), backend_args("sglang")
    assert vllm.paths["num_gpu_blocks_override"] == "cache_config.num_gpu_blocks_override"
    renamed = "vllm engine arg 'disable_log_requests' was renamed to 'enable_log_requests'"
    assert vllm.check("disable_log_requests") == renamed
    assert sglang.check("chunked_prefil_size").endswith("did you mean 'chunked_prefill_size'?")
    assert sglang.check("enable_ep_moe") == "sglang engine arg 'enable_ep_moe' was removed: use ep_size"
    assert vllm.check("zzzz") == "unknown vllm engine arg 'zzzz'"


def test_engine_settings_refuse_a_runtime_no_engine_starts_with():
    from registry.errors import UsageError

    with pytest.raises(UsageError) as caught:
        EngineSettings(backend="vllm", tp_size=4, max_num_seqs=0)
    assert str(caught.value) == "max_num_seqs must be a positive integer, found 0"
    with pytest.raises(UsageError) as caught:
        EngineSettings(backend="vllm", tp_size=1, warmup_shapes=((2048, 0, 0),))
    assert str(caught.value) == (
        "warmup_shapes expects [prompt_len, new_tokens, batch_size] (integers >= 1, 0, 1), found (2048, 0, 0)"
    )
    settings = EngineSettings(backend="vllm", tp_size=1, warmup_shapes=[[2048, 0, 8]])
    assert settings.warmup_shapes == ((2048, 0, 8),)
