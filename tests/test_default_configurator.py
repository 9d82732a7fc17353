"""DefaultConfigurator: layering, version-aware block overrides, chunked prefill, runtime check, strict mode.

Entries are built with ``ModelConfig.from_entry`` (what the loader does after
merging defaults), so each test states exactly the YAML it depends on.
"""

from __future__ import annotations

import importlib.metadata

import pytest

from configurators.default import DefaultConfigurator, resolve_versioned, specifier_for_key
from configurators.summary import APPLIED, CONFLICT, SKIPPED
from configurators.targets import EngineSettings
from registry.errors import ConfigError, Location, StrictModeError
from registry.model_config import ModelConfig

GRANITE = {
    "architecture": {"model_type": "granite", "num_hidden_layers": 40},
    "supported_configs": [
        {"cb": True, "tp_size": 4, "max_model_len": 32768, "max_num_seqs": 32},
        {"cb": True, "tp_size": 1, "max_model_len": 8192, "max_num_seqs": 4},
        {"cb": False, "tp_size": 1, "warmup_shapes": [[2048, 1024, 16], [4096, 512, 8]]},
    ],
    "env_vars": {"SHARED": "model", "MODEL_ONLY": True},
    "backends": {
        "vllm": {
            "env_vars": {"SHARED": "model-vllm", "VLLM_LOGGING_LEVEL": "ERROR"},
            "engine_args": {"gpu_memory_utilization": 0.9, "max_num_batched_tokens": 4096},
            "sampling_args": {"temperature": 1.0, "top_p": 0.9},
        },
        "sglang": {"engine_args": {"kv_cache_dtype": "fp8"}, "sampling_args": {"temperature": 0.5}},
    },
    "device_configs": {
        4: {
            "env_vars": {"SHARED": "device", "VLLM_DT_MAX_BATCH_TKV_LIMIT": 131072},
            "num_gpu_blocks_override": {"torch_sendnn<1.0.3": 2080, "default": 8192},
            "chunked_prefill_config": {"max_num_batched_tokens": 1024},
            "backends": {
                "vllm": {"env_vars": {"SHARED": "device-vllm"}, "sampling_args": {"top_p": 0.95}},
            },
        }
    },
}


def make(entry=GRANITE, environ=None, **attrs) -> DefaultConfigurator:
    configurator = DefaultConfigurator(ModelConfig.from_entry("ibm-granite/granite-3.3-8b-instruct", entry))
    configurator.environ = {} if environ is None else environ
    for key, value in attrs.items():
        setattr(configurator, key, value)
    return configurator


def vllm_target(**kw) -> EngineSettings:
    return EngineSettings(
        **{"backend": "vllm", "tp_size": 4, "max_model_len": 32768, "max_num_seqs": 32, **kw}
    )


def by_name(summary, kind):
    return {s.name: s for s in summary.section(kind)}


def test_env_layers_later_wins_and_all_are_applied():
    configurator = make()
    summary = configurator.configure(vllm_target())
    # model all-backend < model vllm < device all-backend < device vllm
    assert configurator.environ == {
        "SHARED": "device-vllm",
        "MODEL_ONLY": "1",
        "VLLM_LOGGING_LEVEL": "ERROR",
        "VLLM_DT_MAX_BATCH_TKV_LIMIT": "131072",
    }
    shared = by_name(summary, "env")["SHARED"]
    assert shared.source == "device_configs.4.backends.vllm.env_vars"


def test_sglang_gets_only_its_own_backend_section():
    configurator = make()
    target = EngineSettings(backend="sglang", tp_size=4, max_model_len=32768, max_num_seqs=32)
    summary = configurator.configure(target)
    assert configurator.environ["SHARED"] == "device"
    assert "VLLM_LOGGING_LEVEL" not in configurator.environ
    # fp8 KV cache is spelled fp8_e4m3 in SGLang; chunked prefill becomes chunked_prefill_size.
    assert target.applied_engine_args == {"kv_cache_dtype": "fp8_e4m3", "chunked_prefill_size": 1024}
    blocks = by_name(summary, "engine")["num_gpu_blocks_override"]
    assert blocks.status == SKIPPED and "sglang has no KV block-count override" in blocks.note
    assert target.applied_sampling_args == {"temperature": 0.5}


def test_gpu_blocks_and_chunked_prefill_on_vllm():
    target = vllm_target()
    summary = make().configure(target)
    # torch_sendnn is not installed here, so the specifier does not apply and default wins.
    assert target.applied_engine_args["num_gpu_blocks_override"] == 8192
    assert "torch_sendnn is not installed" in by_name(summary, "engine")["num_gpu_blocks_override"].note
    # The device config's chunked prefill (1024) wins over the model-wide engine arg (4096).
    assert target.applied_engine_args["max_num_batched_tokens"] == 1024
    assert target.applied_engine_args["enable_chunked_prefill"] is True
    assert target.applied_engine_args["gpu_memory_utilization"] == 0.9


def test_version_map_with_supplied_version_uses_the_specifier():
    target = vllm_target()
    summary = make(versions={"torch_sendnn": "1.0.2"}).configure(target)
    assert target.applied_engine_args["num_gpu_blocks_override"] == 2080
    assert (
        "torch_sendnn 1.0.2 satisfies 'torch_sendnn<1.0.3'"
        in by_name(summary, "engine")["num_gpu_blocks_override"].note
    )


def test_version_map_against_an_installed_package():
    installed = importlib.metadata.version("packaging")
    where = Location("models.yaml", 3, 5)
    chosen, why = resolve_versioned({"packaging>=20": 111, "default": 222}, None, where, ())
    assert chosen == 111 and why == f"packaging {installed} satisfies 'packaging>=20'"
    chosen, why = resolve_versioned({"packaging<1": 111, "default": 222}, None, where, ())
    assert chosen == 222 and f"packaging {installed} does not satisfy 'packaging<1'" in why


def test_version_map_first_match_in_file_order_wins():
    versions = {"torch_sendnn": "1.0.1"}
    mapping = {"torch_sendnn<1.0.2": 1, "torch_sendnn<1.0.3": 2, "default": 3}
    assert resolve_versioned(mapping, versions, "f", ())[0] == 1
    reordered = {"torch_sendnn<1.0.3": 2, "torch_sendnn<1.0.2": 1, "default": 3}
    assert resolve_versioned(reordered, versions, "f", ())[0] == 2


def test_legacy_keys_are_accepted():
    assert specifier_for_key("torch_sendnn_lt_1_0_3") == "torch_sendnn<1.0.3"
    assert specifier_for_key("torch_sendnn_ge_2_0") == "torch_sendnn>=2.0"
    assert specifier_for_key("default") == "default"
    mapping = {"torch_sendnn_lt_1_0_3": 2080, "default": 8192}
    assert resolve_versioned(mapping, {"torch-sendnn": "1.0.2"}, "f", ())[0] == 2080
    assert resolve_versioned(mapping, {"torch_sendnn": "1.0.3"}, "f", ())[0] == 8192
    assert resolve_versioned(mapping, None, "f", ())[0] == 8192  # not installed: never satisfies


def test_version_map_without_default_and_no_match_sets_nothing():
    entry = {**GRANITE, "device_configs": {4: {"num_gpu_blocks_override": {"torch_sendnn<1.0.3": 2080}}}}
    target = vllm_target()
    summary = make(entry).configure(target)
    assert "num_gpu_blocks_override" not in target.applied_engine_args
    assert any("no default given; not set" in note for note in summary.notes)


def test_bad_version_key_names_file_and_key_path():
    with pytest.raises(ConfigError) as error:
        resolve_versioned({"torch sendnn<<1": 2}, None, Location("m.yaml", 7, 9), ("device_configs", 4, "x"))
    assert str(error.value).startswith("m.yaml:7:9: device_configs.4.x: expected a requirement")


def test_user_set_engine_arg_is_kept_and_reported():
    target = vllm_target(engine_args={"num_gpu_blocks_override": 100, "max_num_batched_tokens": "1024"})
    summary = make().configure(target)
    engine = by_name(summary, "engine")
    assert engine["num_gpu_blocks_override"].status == CONFLICT
    assert engine["num_gpu_blocks_override"].value.applied == 100
    assert engine["num_gpu_blocks_override"].value.default == 8192
    assert "num_gpu_blocks_override" not in target.applied_engine_args
    # "1024" as typed on a command line equals the declared 1024: no conflict.
    assert engine["max_num_batched_tokens"].status == APPLIED
    assert [s.name for s in summary.conflicts] == ["num_gpu_blocks_override"]


def test_sampling_args_merge_and_user_keys_win():
    target = vllm_target(sampling_args={"temperature": 0.2})
    summary = make().configure(target)
    sampling = by_name(summary, "sampling")
    assert sampling["temperature"].status == CONFLICT
    assert sampling["top_p"].value.applied == 0.95  # the device config's vllm section wins
    assert target.applied_sampling_args == {"top_p": 0.95}


def test_supported_runtime():
    summary = make().configure(vllm_target())
    assert summary.runtime.supported is True
    assert summary.runtime.matched == {"cb": True, "tp_size": 4, "max_model_len": 32768, "max_num_seqs": 32}


def test_unsupported_runtime_lists_nearest():
    summary = make().configure(vllm_target(max_model_len=16384))
    assert summary.runtime.supported is False
    assert summary.runtime.nearest[0] == GRANITE["supported_configs"][0]
    text = summary.format_log_message()
    assert "⚠ unsupported runtime (tp_size=4 max_model_len=16384 max_num_seqs=32)" in text


def test_warmup_shapes_must_be_a_subset_of_a_static_entry():
    ok = make().configure(EngineSettings(backend="vllm", tp_size=1, warmup_shapes=((4096, 512, 8),)))
    assert ok.runtime.supported is True and ok.runtime.matched["cb"] is False
    bad = make().configure(EngineSettings(backend="vllm", tp_size=1, warmup_shapes=((1024, 512, 8),)))
    assert bad.runtime.supported is False
    assert bad.runtime.nearest[0]["cb"] is False


def test_only_tp_given_matches_any_runtime_of_that_size():
    summary = make().configure(EngineSettings(backend="vllm", tp_size=1))
    assert summary.runtime.supported is True
    assert make().configure(EngineSettings(backend="vllm", tp_size=2)).runtime.supported is False


def test_no_supported_configs_means_not_checked():
    entry = {"architecture": {"model_type": "llama"}}
    summary = make(entry).configure(EngineSettings(backend="vllm", tp_size=2))
    assert summary.runtime.supported is None
    assert not summary.device_config
    assert "no device_configs entry for tp=2" in summary.format_log_message()


def test_unknown_and_removed_engine_args_warn_with_closest_name_and_are_not_applied():
    entry = {
        **GRANITE,
        "backends": {"vllm": {"engine_args": {"max_num_batched_token": 1, "use_v2_block_manager": True}}},
    }
    target = vllm_target()
    summary = make(entry).configure(target)
    assert summary.warnings == [
        "backends.vllm.engine_args: unknown vllm engine arg 'max_num_batched_token'; "
        "did you mean 'max_num_batched_tokens'?",
        "backends.vllm.engine_args: vllm engine arg 'use_v2_block_manager' was removed: "
        "the block manager v2 is the only one",
    ]
    assert "use_v2_block_manager" not in target.applied_engine_args
    assert by_name(summary, "engine")["use_v2_block_manager"].status == SKIPPED


def test_strict_conflict_raises_and_applies_nothing():
    environ = {"VLLM_DT_MAX_BATCH_TKV_LIMIT": "1", "MODELREG_REQUIRE_KNOWN_CONFIG": "1"}
    configurator = make(environ=environ)
    target = vllm_target()
    with pytest.raises(StrictModeError, match="VLLM_DT_MAX_BATCH_TKV_LIMIT is '1' but the registry declares"):
        configurator.configure(target)
    # The full plan was refused: not even the non-conflicting settings landed.
    assert environ == {"VLLM_DT_MAX_BATCH_TKV_LIMIT": "1", "MODELREG_REQUIRE_KNOWN_CONFIG": "1"}
    assert target.applied_engine_args == {} and target.applied_sampling_args == {}


def test_strict_unsupported_runtime_raises():
    configurator = make(strict=True)
    with pytest.raises(StrictModeError, match=r"unsupported runtime .*nearest supported"):
        configurator.configure(vllm_target(max_num_seqs=64))
    assert configurator.environ == {}


def test_summary_to_dict_reports_everything():
    data = make(environ={"SHARED": "mine"}).configure(vllm_target()).to_dict()
    assert data["model"] == "ibm-granite/granite-3.3-8b-instruct"
    assert data["conflicts"] == ["SHARED"]
    names = [item["name"] for item in data["env_vars"]]
    assert names == ["SHARED", "MODEL_ONLY", "VLLM_LOGGING_LEVEL", "VLLM_DT_MAX_BATCH_TKV_LIMIT"]
    assert {item["name"] for item in data["engine_args"]} == {
        "gpu_memory_utilization",
        "max_num_batched_tokens",
        "num_gpu_blocks_override",
        "enable_chunked_prefill",
    }
    assert data["runtime"]["supported"] is True
