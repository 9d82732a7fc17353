"""The configurator every registry entry uses unless it names its own.

It works in two phases: first it plans every setting (env vars, GPU block
override, chunked prefill, engine and sampling args) and checks the runtime,
then it applies the plan. Strict mode raises between the two, so a refused
configuration leaves the process and the engine config exactly as they were.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from configurators.base import ModelConfigurator, strict_message
from configurators.engine_args import backend_args
from configurators.summary import (
    APPLIED,
    CONFLICT,
    REPLACED,
    SKIPPED,
    ConfigurationSummary,
    ConfigValue,
    RuntimeCheck,
    Setting,
)
from configurators.targets import ConfigTarget, chunked_prefill_args, gpu_blocks_arg
from registry.errors import ConfigError, Location, StrictModeError
from registry.model_config import BackendSettings, DeviceConfig, RuntimeConfig

_LEGACY_KEY = re.compile(r"^(?P<dist>[A-Za-z0-9_.-]+?)_(?P<op>lt|le|gt|ge|eq)_(?P<ver>[0-9][0-9_]*)$")
_LEGACY_OPS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "=="}
_NEAREST = 3


def specifier_for_key(key: str) -> str:
    """A version-map key as a requirement: the legacy ``torch_sendnn_lt_1_0_3`` is ``torch_sendnn<1.0.3``."""
    legacy = _LEGACY_KEY.match(key)
    if legacy:
        version = legacy["ver"].replace("_", ".")
        return f"{legacy['dist']}{_LEGACY_OPS[legacy['op']]}{version}"
    return key


def installed_version(dist: str, versions: Mapping[str, str] | None) -> str | None:
    """The caller-supplied version of ``dist``, else the installed one, else ``None`` (not installed)."""
    from packaging.utils import canonicalize_name

    if versions:
        wanted = canonicalize_name(dist)
        for name, version in versions.items():
            if canonicalize_name(name) == wanted:
                return version
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def resolve_versioned(
    value: int | Mapping[str, int], versions: Mapping[str, str] | None, where: Location | str, key_path: tuple
) -> tuple[int | None, str]:
    """The value a version map selects, and a sentence saying why (for the summary).

    Keys are tried in file order; the first whose requirement the installed (or
    supplied) version satisfies wins, then ``default``. A package that is not
    installed satisfies no specifier.
    """
    if not isinstance(value, Mapping):
        return value, ""
    from packaging.requirements import InvalidRequirement, Requirement

    reasons = []
    for key, chosen in value.items():
        if key == "default":
            continue
        try:
            requirement = Requirement(specifier_for_key(key))
        except InvalidRequirement as error:
            expected = f"expected a requirement such as 'torch_sendnn<1.0.3', found {key!r} ({error})"
            raise ConfigError.at(where, expected, key_path) from None
        version = installed_version(requirement.name, versions)
        if version is None:
            reasons.append(f"{requirement.name} is not installed, so {key!r} does not apply")
            continue
        if requirement.specifier.contains(version, prereleases=True):
            return chosen, f"{requirement.name} {version} satisfies {key!r}"
        reasons.append(f"{requirement.name} {version} does not satisfy {key!r}")
    if "default" in value:
        return value["default"], "; ".join([*reasons, "using default"])
    return None, "; ".join([*reasons, "no default given"])


class DefaultConfigurator(ModelConfigurator):
    """Applies a registry entry's env vars, device config and per-backend args to a target.

    ``versions`` (distribution → version) stands in for installed versions when
    evaluating version-aware overrides, e.g. a plugin that knows its
    accelerator stack's version better than package metadata does.
    """

    versions: Mapping[str, str] | None = None

    def configure(self, target: ConfigTarget) -> ConfigurationSummary:
        self._notes: list[str] = []
        tp_size = target.tp_size
        device = self.get_device_config(tp_size)
        summary = ConfigurationSummary(
            model=self.model_config.name,
            backend=target.backend,
            tp_size=tp_size,
            configurator=type(self).__name__,
            device_config=device is not None,
            runtime=self.check_runtime(target),
        )
        env_layers = self._env_layers(target.backend, device)
        env = [self.plan_env_var(k, v, source=src) for k, (v, src) in env_layers.items()]
        # Later layers win: model-wide args, then the device config's block and prefill
        # settings, then the device config's own engine_args.
        engine: dict[str, Setting] = {}
        model_args = self._model_backend(target.backend).engine_args
        self._plan_engine_args(target, model_args, f"backends.{target.backend}.engine_args", engine, summary)
        for setting in [
            *self._configure_gpu_blocks(device, target, tp_size),
            *self._configure_chunked_prefill(device, target, tp_size),
        ]:
            engine[setting.name] = setting
        if device is not None and target.backend in device.backends:
            source = _device_path(tp_size, f"backends.{target.backend}.engine_args")
            device_args = device.backends[target.backend].engine_args
            self._plan_engine_args(target, device_args, source, engine, summary)
        sampling = self._plan_sampling(target, device)
        summary.settings = [*env, *engine.values(), *sampling]
        summary.notes.extend(self._notes)
        self._check_strict(summary)
        self._apply(summary, target)
        return summary

    # --- runtime ---------------------------------------------------------------------------------------

    def check_runtime(self, target: ConfigTarget) -> RuntimeCheck:
        """Requested (tp, max_model_len, max_num_seqs) must equal a ``cb: true`` entry, or the
        requested warmup shapes be a subset of a ``cb: false`` entry's. A value not given matches
        any; with only the TP size given, any entry of that size matches."""
        requested: dict[str, Any] = {"tp_size": target.tp_size}
        if target.warmup_shapes:
            requested["warmup_shapes"] = [list(s) for s in target.warmup_shapes]
        else:
            requested["max_model_len"] = target.max_model_len
            requested["max_num_seqs"] = target.max_num_seqs
        declared = self.model_config.supported_configs
        if not declared:
            return RuntimeCheck(requested, None)
        for rc in declared:
            if _runtime_matches(rc, target):
                return RuntimeCheck(requested, True, matched=rc.to_dict())
        nearest = sorted(declared, key=lambda rc: _distance(rc, target))[:_NEAREST]
        return RuntimeCheck(requested, False, nearest=tuple(rc.to_dict() for rc in nearest))

    # --- env vars --------------------------------------------------------------------------------------

    def _env_layers(self, backend: str, device: DeviceConfig | None) -> dict[str, tuple[Any, str]]:
        """Model (defaults merged in), then device config; all-backend, then the backend's; later wins."""
        layers: list[tuple[Mapping[str, Any], str]] = [
            (self.model_config.env_vars, "env_vars"),
            (self._model_backend(backend).env_vars, f"backends.{backend}.env_vars"),
        ]
        if device is not None:
            layers.append((device.env_vars, _device_path(device.tp_size, "env_vars")))
            if backend in device.backends:
                path = _device_path(device.tp_size, f"backends.{backend}.env_vars")
                layers.append((device.backends[backend].env_vars, path))
        return _layered(layers)

    # --- device config -----------------------------------------------------------------------------------

    def _configure_gpu_blocks(
        self, device_config: DeviceConfig | None, target: ConfigTarget, tp_size: int
    ) -> list[Setting]:
        """The KV block override: an int, or a version map resolved against installed packages."""
        if device_config is None or device_config.num_gpu_blocks_override is None:
            return []
        source = _device_path(tp_size, "num_gpu_blocks_override")
        where = device_config.source or self.model_config.source or self.model_config.name
        key_path = ("models", self.model_config.name, "device_configs", tp_size, "num_gpu_blocks_override")
        blocks, why = resolve_versioned(device_config.num_gpu_blocks_override, self.versions, where, key_path)
        if blocks is None:
            self._notes.append(f"num_gpu_blocks_override: {why}; not set")
            return []
        arg = gpu_blocks_arg(target.backend)
        if arg is None:
            note = f"{target.backend} has no KV block-count override"
            value = ConfigValue(blocks, None)
            return [Setting("engine", "num_gpu_blocks_override", value, SKIPPED, source, note=note)]
        setting = self._plan_engine_arg(target, arg, blocks, source)
        return [replace(setting, note=why) if why and not setting.note else setting]

    def _configure_chunked_prefill(
        self, device_config: DeviceConfig | None, target: ConfigTarget, tp_size: int
    ) -> list[Setting]:
        """Chunked prefill with the declared per-step token budget (``max_num_batched_tokens``)."""
        if device_config is None or not device_config.chunked_prefill_config:
            return []
        tokens = device_config.chunked_prefill_config.get("max_num_batched_tokens")
        if tokens is None:
            return []
        source = _device_path(tp_size, "chunked_prefill_config")
        return [
            self._plan_engine_arg(target, name, value, source)
            for name, value in chunked_prefill_args(target.backend, tokens).items()
        ]

    # --- engine and sampling args ----------------------------------------------------------------------

    def _plan_engine_args(
        self,
        target: ConfigTarget,
        args: Mapping[str, Any],
        source: str,
        into: dict[str, Setting],
        summary: ConfigurationSummary,
    ) -> None:
        known = backend_args(target.backend)
        for name, value in args.items():
            problem = known.check(name)
            if problem:
                summary.warnings.append(f"{source}: {problem}")
                into[name] = Setting("engine", name, ConfigValue(value, None), SKIPPED, source, note=problem)
            else:
                into[name] = self._plan_engine_arg(target, name, value, source)

    def _plan_engine_arg(self, target: ConfigTarget, name: str, value: Any, source: str) -> Setting:
        value = target.normalize(name, value)
        reason = target.unsupported(name)
        if reason:
            return Setting("engine", name, ConfigValue(value, None), SKIPPED, source, note=reason)
        user = target.user_value(name)
        if user is None or same_value(user, value):
            return Setting("engine", name, ConfigValue(value, value), APPLIED, source)
        return Setting("engine", name, ConfigValue(value, user), CONFLICT, source, previous=user)

    def _plan_sampling(self, target: ConfigTarget, device_config: DeviceConfig | None) -> list[Setting]:
        backend = target.backend
        layers = [(self._model_backend(backend).sampling_args, f"backends.{backend}.sampling_args")]
        if device_config is not None and backend in device_config.backends:
            path = _device_path(device_config.tp_size, f"backends.{backend}.sampling_args")
            layers.append((device_config.backends[backend].sampling_args, path))
        user = target.user_sampling()
        out = []
        for key, (value, source) in _layered(layers).items():
            if key in user and user[key] != value:
                mine = user[key]
                value_pair = ConfigValue(value, mine)
                out.append(Setting("sampling", key, value_pair, CONFLICT, source, previous=mine))
            else:
                out.append(Setting("sampling", key, ConfigValue(value, value), APPLIED, source))
        return out

    # --- strict mode and applying ----------------------------------------------------------------------

    def _check_strict(self, summary: ConfigurationSummary) -> None:
        if not self.is_strict:
            return
        conflicts = [s for s in summary.settings if s.status == CONFLICT]
        unsupported = None
        if summary.runtime is not None and summary.runtime.supported is False:
            unsupported = summary.runtime.line().removeprefix("⚠ ")
        if conflicts or unsupported:
            raise StrictModeError(strict_message(conflicts, unsupported))

    def _apply(self, summary: ConfigurationSummary, target: ConfigTarget) -> None:
        sampling = {}
        for setting in summary.settings:
            if setting.status not in (APPLIED, REPLACED):
                continue
            if setting.kind == "env":
                self.environ[setting.name] = setting.value.applied
            elif setting.kind == "engine":
                target.set(setting.name, setting.value.applied)
            else:
                sampling[setting.name] = setting.value.applied
        if sampling:
            target.set_sampling(sampling)

    # --- helpers ---------------------------------------------------------------------------------------

    def _model_backend(self, backend: str) -> BackendSettings:
        return self.model_config.backends.get(backend) or BackendSettings()


def _device_path(tp_size: int, rest: str) -> str:
    return f"device_configs.{tp_size}.{rest}"


def _layered(layers: list[tuple[Mapping[str, Any], str]]) -> dict[str, tuple[Any, str]]:
    """Name → (value, key path it came from); a later layer replaces an earlier one."""
    merged: dict[str, tuple[Any, str]] = {}
    for values, source in layers:
        for key, value in values.items():
            merged[key] = (value, source)
    return merged


def same_value(user: Any, declared: Any) -> bool:
    """Equal, or equal as the user would have typed it (server flags arrive as strings: ``"1024"``)."""
    if user == declared:
        return True
    if isinstance(user, str) and not isinstance(declared, str):
        try:
            return json.loads(user) == declared
        except ValueError:
            return user == str(declared)
    return False


def _runtime_matches(rc: RuntimeConfig, target: ConfigTarget) -> bool:
    if rc.tp_size != target.tp_size:
        return False
    if not target.warmup_shapes and target.max_model_len is None and target.max_num_seqs is None:
        return True  # only the TP size was asked for: any runtime of that size will do
    if target.warmup_shapes:
        return not rc.cb and set(target.warmup_shapes) <= set(rc.warmup_shapes)
    return (
        rc.cb
        and target.max_model_len in (None, rc.max_model_len)
        and target.max_num_seqs in (None, rc.max_num_seqs)
    )


def _distance(rc: RuntimeConfig, target: ConfigTarget) -> tuple[int, int, float]:
    """Sort key for "nearest supported": same TP, then same batching mode, then how far the sizes are."""
    wants_static = bool(target.warmup_shapes)
    if wants_static:
        gap = float(len(set(target.warmup_shapes) - set(rc.warmup_shapes)))
    else:
        gap = _log_gap(rc.max_model_len, target.max_model_len)
        gap += _log_gap(rc.max_num_seqs, target.max_num_seqs)
    return (rc.tp_size != target.tp_size, rc.cb == wants_static, gap)


def _log_gap(declared: int | None, requested: int | None) -> float:
    if not declared or not requested:
        return 0.0
    return abs(math.log2(declared / requested))
