"""The Python startup hooks against the packaged registry and real HF configs.

``configure_vllm`` / ``configure_sglang`` get minimal objects with the same
attribute paths as vLLM's ``VllmConfig`` and SGLang's ``ServerArgs`` (neither
engine can run here); the model matching behind them is the real registry on
real ``config.json`` files.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from conftest import hf_config_path
from test_targets import FakeServerArgs, fake_vllm_config

from configurators.hooks import configure, configure_sglang, configure_vllm
from configurators.summary import CONFLICT
from registry.errors import ConfigError, MatchError, StrictModeError, UsageError
from registry.model_registry import get_model_registry

GRANITE = "ibm-granite/granite-3.3-8b-instruct"
GRANITE_VARS = ("VLLM_DT_MAX_BATCH_TKV_LIMIT", "FLEX_HDMA_P2PSIZE")


@pytest.fixture
def clean_env(monkeypatch, offline_hf):
    """The process environment without the variables the hooks set (restored afterwards)."""
    for name in (*GRANITE_VARS, "MODELREG_REQUIRE_KNOWN_CONFIG", "CUSTOM_VAR"):
        monkeypatch.setenv(name, "")  # recorded, so the teardown removes what the hooks set
        monkeypatch.delenv(name)
    monkeypatch.setattr("sys.argv", ["pytest"])
    yield os.environ
    get_model_registry()  # back to the packaged registry for the next test


def test_generic_configure_uses_the_packaged_entry(clean_env):
    env: dict[str, str] = {}
    summary = configure(GRANITE, tp_size=4, backend="vllm", max_model_len=32768, max_num_seqs=32, environ=env)
    assert env == {"VLLM_DT_MAX_BATCH_TKV_LIMIT": "131072", "FLEX_HDMA_P2PSIZE": "268435456"}
    assert summary.applied("engine") == {
        "num_gpu_blocks_override": 8192,  # torch_sendnn is absent: the map's default
        "max_num_batched_tokens": 1024,
        "enable_chunked_prefill": True,
    }
    assert summary.runtime.supported is True
    assert "VLLM_DT_MAX_BATCH_TKV_LIMIT" not in os.environ  # only the given environ was touched


def test_generic_configure_with_supplied_version(clean_env):
    summary = configure(GRANITE, tp_size=4, environ={}, versions={"torch_sendnn": "1.0.2"})
    assert summary.applied("engine")["num_gpu_blocks_override"] == 2080


def test_generic_configure_keeps_caller_engine_args(clean_env):
    summary = configure(GRANITE, tp_size=4, environ={}, engine_args={"max_num_batched_tokens": 2048})
    assert [s.name for s in summary.conflicts] == ["max_num_batched_tokens"]


def test_generic_configure_unknown_model_is_a_match_error(clean_env):
    with pytest.raises(MatchError, match="no registry entry matches"):
        configure({"model_type": "bert", "num_hidden_layers": 3}, tp_size=1, environ={})


def test_generic_configure_bad_backend(clean_env):
    with pytest.raises(UsageError, match="--backend must be one of vllm, sglang, found 'trt'"):
        configure(GRANITE, tp_size=4, backend="trt")


def test_configure_vllm_applies_to_config_and_process(clean_env):
    config = fake_vllm_config()
    summary = configure_vllm(config, explicit=[])
    assert os.environ["VLLM_DT_MAX_BATCH_TKV_LIMIT"] == "131072"
    assert config.cache_config.num_gpu_blocks_override == 8192
    assert config.scheduler_config.max_num_batched_tokens == 1024
    assert summary.model == GRANITE and summary.runtime.supported is True


def test_configure_vllm_reads_explicit_flags_from_the_command_line(clean_env, monkeypatch):
    monkeypatch.setattr("sys.argv", ["vllm", "serve", GRANITE, "--max-num-batched-tokens", "4096"])
    monkeypatch.setenv("FLEX_HDMA_P2PSIZE", "1")
    config = fake_vllm_config(max_num_batched_tokens=4096)
    summary = configure_vllm(config)
    assert config.scheduler_config.max_num_batched_tokens == 4096
    assert os.environ["FLEX_HDMA_P2PSIZE"] == "1"
    assert {s.name: s.status for s in summary.conflicts} == {
        "FLEX_HDMA_P2PSIZE": CONFLICT,
        "max_num_batched_tokens": CONFLICT,
    }


def test_configure_vllm_strict_conflict_applies_nothing(clean_env, monkeypatch):
    monkeypatch.setenv("FLEX_HDMA_P2PSIZE", "1")
    monkeypatch.setenv("MODELREG_REQUIRE_KNOWN_CONFIG", "1")
    config = fake_vllm_config()
    with pytest.raises(StrictModeError, match="FLEX_HDMA_P2PSIZE is '1'"):
        configure_vllm(config, explicit=[])
    assert "VLLM_DT_MAX_BATCH_TKV_LIMIT" not in os.environ
    assert config.cache_config.num_gpu_blocks_override is None


def test_configure_vllm_unknown_model_returns_none_or_raises_in_strict(clean_env):
    config = fake_vllm_config()
    config.model_config.hf_config = {"model_type": "bert", "num_hidden_layers": 3}
    config.model_config.model = "someone/unknown-bert"
    assert configure_vllm(config, explicit=[]) is None
    with pytest.raises(MatchError):
        configure_vllm(config, explicit=[], strict=True)


def test_configure_sglang(clean_env):
    args = FakeServerArgs(model_path=str(hf_config_path(GRANITE).parent))
    summary = configure_sglang(args, explicit=[])
    assert args.chunked_prefill_size == 1024
    assert os.environ["FLEX_HDMA_P2PSIZE"] == "268435456"
    assert summary.backend == "sglang"
    skipped = {s.name: s for s in summary.section("engine")}["num_gpu_blocks_override"]
    assert skipped.status == "skipped"


def write_registry(tmp_path, configurator: str) -> str:
    path = tmp_path / "models.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            models:
              test/granite-custom:
                architecture: {{model_type: granite, num_hidden_layers: 40, vocab_size: 49159}}
                configurator: {configurator}
                supported_configs:
                  - {{cb: true, tp_size: 4, max_model_len: 8192, max_num_seqs: 8}}
                device_configs:
                  4: {{env_vars: {{CUSTOM_VAR: 1}}}}
            """
        )
    )
    return str(path)


CUSTOM_MODULE = """
from configurators.base import ModelConfigurator
from configurators.summary import ConfigurationSummary


class MyConfigurator(ModelConfigurator):
    def configure(self, target):
        declared = self.get_device_config(target.tp_size).env_vars["CUSTOM_VAR"]
        self.set_env_var("CUSTOM_VAR", f"custom-{declared}")
        return ConfigurationSummary(self.model_config.name, target.backend, target.tp_size, "MyConfigurator",
                                    settings=self.env_settings)
"""


def test_custom_configurator_from_the_entry(clean_env, tmp_path, monkeypatch):
    (tmp_path / "custom_cfg.py").write_text(CUSTOM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = write_registry(tmp_path, "custom_cfg:MyConfigurator")
    env: dict[str, str] = {}
    summary = configure(str(hf_config_path(GRANITE)), tp_size=4, config_path=registry, environ=env)
    assert summary.configurator == "MyConfigurator"
    assert env == {"CUSTOM_VAR": "custom-1"}


def test_bad_configurator_reference_fails_at_load(clean_env, tmp_path):
    registry = write_registry(tmp_path, "no_such_module_xyz:Nope")
    with pytest.raises(ConfigError) as error:
        get_model_registry(registry)
    message = str(error.value)
    assert registry in message and "configurator" in message and "no_such_module_xyz" in message


def test_summary_json_round_trips(clean_env):
    summary = configure(GRANITE, tp_size=4, environ={"FLEX_HDMA_P2PSIZE": "1"})
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["conflicts"] == ["FLEX_HDMA_P2PSIZE"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tp_size": 0}, "tp_size must be a positive integer, found 0"),
        ({"tp_size": True}, "tp_size must be a positive integer, found True"),
        ({"tp_size": "4"}, "tp_size must be a positive integer, found '4'"),
        ({"tp_size": 4, "max_model_len": -5}, "max_model_len must be a positive integer, found -5"),
        (
            {"tp_size": 1, "warmup_shapes": [["a", 2, 3]]},
            "warmup_shapes expects [prompt_len, new_tokens, batch_size] (integers >= 1, 0, 1), "
            "found ['a', 2, 3]",
        ),
        ({"tp_size": 4, "engine_args": 5}, "engine_args must be a mapping of name to value, found 5"),
        ({"tp_size": 4, "environ": 5}, "environ must be a mutable mapping (os.environ, a dict), found 5"),
    ],
)
def test_generic_configure_refuses_bad_arguments_and_sets_nothing(clean_env, kwargs, message):
    with pytest.raises(UsageError) as caught:
        configure(GRANITE, **kwargs)
    assert str(caught.value) == message
    assert not any(name in os.environ for name in GRANITE_VARS)


def test_hooks_given_the_wrong_object_say_what_they_expected(clean_env):
    with pytest.raises(UsageError) as caught:
        configure_vllm(None, explicit=())
    assert str(caught.value) == (
        "expected a vLLM VllmConfig (with .parallel_config, .model_config, .scheduler_config), "
        "found NoneType without .parallel_config, .model_config, .scheduler_config"
    )
    with pytest.raises(UsageError) as caught:
        configure_sglang(42, explicit=())
    assert str(caught.value) == (
        "expected an SGLang ServerArgs (with .tp_size, .model_path), found int without .tp_size, .model_path"
    )
