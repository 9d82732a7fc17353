"""The configurator contract and the helpers every configurator shares.

A configurator takes one registry entry (``ModelConfig``) and applies it to a
target (a vLLM ``VllmConfig``, an SGLang ``ServerArgs``, or our own
``EngineSettings``). The rule that matters most lives here: a value the user
already set is never silently replaced. It is kept and reported as a conflict,
and under ``MODELREG_REQUIRE_KNOWN_CONFIG=1`` (strict mode) a conflict is an error.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from configurators.summary import APPLIED, CONFLICT, REPLACED, ConfigurationSummary, ConfigValue, Setting
from registry.errors import StrictModeError, UsageError
from registry.model_config import DeviceConfig, ModelConfig

if TYPE_CHECKING:
    from configurators.targets import ConfigTarget

STRICT_ENV = "MODELREG_REQUIRE_KNOWN_CONFIG"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = {"1", "true", "yes", "on"}


def strict_from_env(environ: MutableMapping[str, str] | None = None) -> bool:
    """Whether ``MODELREG_REQUIRE_KNOWN_CONFIG`` asks for strict mode."""
    environ = os.environ if environ is None else environ
    return environ.get(STRICT_ENV, "").strip().lower() in _TRUE


def env_value(value: Any) -> str:
    """Render a YAML scalar as an environment variable value.

    Booleans become ``1`` / ``0`` because that is what engines test for
    (``VLLM_USE_V1=1``); ``"True"`` is read as true by some and as garbage by
    others. Integers are decimal, everything else is ``str()``.
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def check_env_name(name: str) -> str:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise UsageError(f"invalid environment variable name {name!r}: expected letters, digits and _")
    return name


class ModelConfigurator(ABC):
    """Applies one registry entry; subclasses implement :meth:`configure`.

    ``environ`` is where environment variables land: ``os.environ`` for a
    startup hook inside the server process, a copy for ``modelreg exec`` (the
    child's environment) or for ``modelreg configure`` (display only).
    Settings made through :meth:`set_env_var` are recorded in ``env_settings``,
    so a custom configurator's summary is complete without extra work.
    """

    def __init__(self, model_config: ModelConfig):
        self.model_config = model_config
        self.environ: MutableMapping[str, str] = os.environ
        self.strict: bool | None = None  # None: follow MODELREG_REQUIRE_KNOWN_CONFIG
        self.env_settings: list[Setting] = []

    @abstractmethod
    def configure(self, target: ConfigTarget) -> ConfigurationSummary:
        """Apply the entry to ``target`` and report exactly what was applied."""

    @property
    def is_strict(self) -> bool:
        return strict_from_env(self.environ) if self.strict is None else self.strict

    def get_device_config(self, tp_size: int) -> DeviceConfig | None:
        """The entry's settings for this TP size, or ``None`` when it declares none."""
        return self.model_config.get_device_config(tp_size)

    def plan_env_var(self, key: str, value: Any, override: bool = False, source: str = "") -> Setting:
        """What :meth:`set_env_var` would do, without doing it (so a whole plan can be checked first)."""
        check_env_name(key)
        wanted = env_value(value)
        current = self.environ.get(key)
        if current is None or current == wanted:
            return Setting("env", key, ConfigValue(wanted, wanted), APPLIED, source)
        if override:
            return Setting("env", key, ConfigValue(wanted, wanted), REPLACED, source, previous=current)
        return Setting("env", key, ConfigValue(wanted, current), CONFLICT, source, previous=current)

    def set_env_var(self, key: str, value: Any, override: bool = False, source: str = "") -> ConfigValue:
        """Set ``key`` unless the user already set it to something else (then keep theirs and report it).

        ``override=True`` replaces the user's value, and says so. In strict mode
        a conflict raises :class:`StrictModeError` and nothing is set.
        """
        setting = self.plan_env_var(key, value, override, source)
        if setting.status == CONFLICT and self.is_strict:
            raise StrictModeError(strict_message([setting], None))
        self.environ[key] = setting.value.applied
        self.env_settings.append(setting)
        return setting.value


def strict_message(conflicts: list[Setting], unsupported: str | None) -> str:
    """The one sentence strict mode fails with: every conflict and the runtime problem together."""
    problems = [
        f"{s.name} is {s.value.applied!r} but the registry declares {s.value.default!r}" for s in conflicts
    ]
    if unsupported:
        problems.append(unsupported)
    return f"{STRICT_ENV}=1: nothing was applied because " + "; ".join(problems)
