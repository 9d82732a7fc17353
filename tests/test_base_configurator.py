"""ModelConfigurator's shared rules: a user-set env var is kept and reported; strict mode raises."""

from __future__ import annotations

import pytest

from configurators.base import ModelConfigurator, env_value, strict_from_env
from configurators.summary import APPLIED, CONFLICT, REPLACED, ConfigurationSummary, ConfigValue
from configurators.targets import ConfigTarget, EngineSettings
from registry.errors import StrictModeError, UsageError
from registry.model_config import ModelConfig

ENTRY = {
    "architecture": {"model_type": "granite"},
    "device_configs": {4: {"env_vars": {"VLLM_DT_MAX_BATCH_TKV_LIMIT": 131072}}},
}


class RecordingConfigurator(ModelConfigurator):
    """A minimal custom configurator: sets the device config's env vars through the base helper."""

    def configure(self, target: ConfigTarget) -> ConfigurationSummary:
        device = self.get_device_config(target.tp_size)
        for key, value in (device.env_vars if device else {}).items():
            self.set_env_var(key, value)
        return ConfigurationSummary(
            self.model_config.name,
            target.backend,
            target.tp_size,
            type(self).__name__,
            settings=self.env_settings,
        )


@pytest.fixture
def configurator() -> RecordingConfigurator:
    c = RecordingConfigurator(ModelConfig.from_entry("test/model", ENTRY))
    c.environ = {}
    return c


def test_set_env_var_sets_an_unset_variable(configurator):
    value = configurator.set_env_var("FOO", 131072)
    assert value == ConfigValue("131072", "131072")
    assert configurator.environ["FOO"] == "131072"
    assert configurator.env_settings[0].status == APPLIED


def test_user_value_is_kept_and_reported_as_a_conflict(configurator):
    configurator.environ["FOO"] = "7"
    value = configurator.set_env_var("FOO", 131072)
    assert value.default == "131072" and value.applied == "7" and value.conflict
    assert configurator.environ["FOO"] == "7"
    setting = configurator.env_settings[0]
    assert setting.status == CONFLICT and setting.previous == "7"
    assert "⚠ FOO=7 (set by the user; default: 131072)" in setting.line()


def test_same_value_already_set_is_no_conflict(configurator):
    configurator.environ["FOO"] = "131072"
    assert not configurator.set_env_var("FOO", 131072).conflict
    assert configurator.env_settings[0].status == APPLIED


def test_override_replaces_and_says_so(configurator):
    configurator.environ["FOO"] = "7"
    value = configurator.set_env_var("FOO", "8", override=True)
    assert value == ConfigValue("8", "8")
    assert configurator.environ["FOO"] == "8"
    assert configurator.env_settings[0].status == REPLACED
    assert "replaced the user's 7" in configurator.env_settings[0].line()


def test_strict_conflict_raises_and_sets_nothing(configurator):
    configurator.environ.update({"FOO": "7", "MODELREG_REQUIRE_KNOWN_CONFIG": "1"})
    with pytest.raises(StrictModeError, match="FOO is '7' but the registry declares '131072'"):
        configurator.set_env_var("FOO", 131072)
    assert configurator.environ["FOO"] == "7"
    assert configurator.env_settings == []


def test_strict_attribute_wins_over_environment(configurator):
    configurator.environ["FOO"] = "7"
    configurator.strict = True
    with pytest.raises(StrictModeError):
        configurator.set_env_var("FOO", 1)


@pytest.mark.parametrize("name", ["1ABC", "A-B", "", "A B", "X=Y"])
def test_invalid_env_var_names_are_rejected(configurator, name):
    with pytest.raises(UsageError, match="invalid environment variable name"):
        configurator.set_env_var(name, 1)


def test_values_are_stringified():
    assert env_value(True) == "1"
    assert env_value(False) == "0"
    assert env_value(268435456) == "268435456"
    assert env_value(0.5) == "0.5"
    assert env_value("ERROR") == "ERROR"


def test_strict_from_env_values():
    assert strict_from_env({"MODELREG_REQUIRE_KNOWN_CONFIG": "1"})
    assert strict_from_env({"MODELREG_REQUIRE_KNOWN_CONFIG": "true"})
    assert not strict_from_env({"MODELREG_REQUIRE_KNOWN_CONFIG": "0"})
    assert not strict_from_env({})


def test_get_device_config_by_tp_size(configurator):
    assert configurator.get_device_config(4).env_vars == {"VLLM_DT_MAX_BATCH_TKV_LIMIT": 131072}
    assert configurator.get_device_config(8) is None


def test_custom_configurator_summary_comes_from_tracked_settings(configurator):
    summary = configurator.configure(EngineSettings(backend="vllm", tp_size=4))
    assert summary.applied("env") == {"VLLM_DT_MAX_BATCH_TKV_LIMIT": "131072"}
    assert "✓ VLLM_DT_MAX_BATCH_TKV_LIMIT=131072" in summary.format_log_message()
    assert summary.to_dict()["env_vars"][0]["status"] == "applied"


def test_configurator_is_abstract():
    with pytest.raises(TypeError):
        ModelConfigurator(ModelConfig.from_entry("x", ENTRY))  # type: ignore[abstract]
