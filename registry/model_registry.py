"""The model registry: ``model_configs.yaml`` loaded, validated, merged and indexed.

One registry serves a whole process (``get_model_registry``), shared by threads
that may ask for it at the same moment, so it is built once under a lock. A
registry's state is an immutable snapshot swapped in one assignment: a reload or
registration that fails leaves the previous snapshot serving, and readers never
see a half-built one.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.errors import ConfigError, Location, MatchError, format_key_path
from registry.hf_config import load_config_dict, load_hf_config
from registry.loader import YamlDocument, file_path, gc_paused, load_yaml_document, schema_errors
from registry.model_config import ModelConfig, deep_merge
from registry.model_matcher import CandidateReport, ModelMatcher, PatternIndex, get_attribute

PACKAGED_CONFIG = Path(__file__).resolve().parent / "model_configs.yaml"
SCHEMA_PATH = Path(__file__).resolve().parent / "model_configs.schema.json"
CONFIG_ENV = "MODELREG_CONFIG_FILE"
DEFAULT_CONFIGURATOR = "configurators.default:DefaultConfigurator"

_schema_cache: dict[str, Any] = {}


def load_schema() -> dict[str, Any]:
    """The registry's JSON Schema (read once per process)."""
    if "schema" not in _schema_cache:
        _schema_cache["schema"] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return _schema_cache["schema"]


def default_config_path() -> Path:
    """``MODELREG_CONFIG_FILE`` when set, else the packaged registry."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else PACKAGED_CONFIG


@dataclass(frozen=True)
class MatchResult:
    """The outcome of matching one model: the entry (or None) and the config it was matched on."""

    name: str | None
    hf_config: Any
    origin: str
    model_id: str | None


@dataclass(frozen=True)
class _Snapshot:
    path: str
    document: YamlDocument | None
    models: dict[str, ModelConfig]
    raw_entries: dict[str, dict[str, Any]]
    families: dict[str, dict[str, Any]]
    defaults: dict[str, Any]
    index: PatternIndex


def load_registry_file(path: str | os.PathLike[str]) -> _Snapshot:
    """Load, validate and build every model of one registry file; all problems raise together."""
    with gc_paused():
        return _build(load_yaml_document(path))


def _build(document: YamlDocument, extra: Mapping[str, dict[str, Any]] | None = None) -> _Snapshot:
    if document.data is None:  # an empty file is an empty registry
        document = YamlDocument(document.file, {}, document.root)
    data = document.data
    if not isinstance(data, dict):
        raise ConfigError([document.at((), f"expected a mapping with 'models', found {type(data).__name__}")])
    problems = schema_errors(document, load_schema())
    if problems:
        raise ConfigError(problems)
    builder = _EntryBuilder(document, data)
    models = builder.build_all()
    raw_entries = dict(data.get("models") or {})
    for name, entry in (extra or {}).items():
        models[name] = builder.build_extra(name, entry)
        raw_entries[name] = entry
    if builder.problems:
        raise ConfigError(builder.problems)
    return _Snapshot(
        path=document.file,
        document=document,
        models=models,
        raw_entries=raw_entries,
        families=dict(data.get("families") or {}),
        defaults=dict(data.get("defaults") or {}),
        index=PatternIndex({name: m.architecture for name, m in models.items()}),
    )


class _EntryBuilder:
    """Applies ``defaults`` and ``extends``, runs the checks a schema cannot express, builds ModelConfigs."""

    def __init__(self, document: YamlDocument, data: Mapping[str, Any]):
        self.document = document
        self.defaults = dict(data.get("defaults") or {})
        self.families = dict(data.get("families") or {})
        self.models = dict(data.get("models") or {})
        self.problems: list[str] = []
        self._shared: dict[int, Any] = {}
        self._resolved: dict[tuple[str, str], tuple[dict[str, Any] | None, list[tuple[str, str]]]] = {}
        self._configurators_checked: dict[str, str | None] = {}

    def build_all(self) -> dict[str, ModelConfig]:
        built = {}
        for name in self.models:
            model = self._build_one(name, ("models", name))
            if model is not None:
                built[name] = model
        return built

    def build_extra(self, name: str, entry: dict[str, Any]) -> ModelConfig:
        """A model given through the API (``register_model``), already schema-checked."""
        self.models[name] = entry
        model = self._build_one(name, ("models", name))
        if model is None:
            raise ConfigError(self.problems)
        return model

    def _locate(self, chain: list[tuple[str, str]], rel: tuple[Any, ...]) -> tuple[Any, ...]:
        """The key path of ``rel`` in the first link of the inheritance chain that writes it."""
        for section, name in chain:
            node: Any = (self.models if section == "models" else self.families).get(name)
            for key in rel:
                node = node.get(key, _ABSENT) if isinstance(node, Mapping) else _ABSENT
            if node is not _ABSENT:
                return (section, name, *rel)
        return (*chain[0], *rel)

    def _problem(self, chain: list[tuple[str, str]], rel: tuple[Any, ...], message: str) -> None:
        self.problems.append(self.document.at(self._locate(chain, rel), message))

    def _resolve(
        self, link: tuple[str, str], stack: tuple[tuple[str, str], ...] = ()
    ) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
        """The entry merged over its ``extends`` ancestors and ``defaults`` (child wins), and its chain.

        Results are memoized per family or model, so 10,000 models sharing a
        family merge it once and a broken family is reported once.
        """
        if link in self._resolved:
            return self._resolved[link]
        section, name = link
        entry = (self.families if section == "families" else self.models)[name]
        own = {k: v for k, v in entry.items() if k != "extends"}
        parent = entry.get("extends")
        result: tuple[dict[str, Any] | None, list[tuple[str, str]]]
        if not parent:
            result = (deep_merge(self.defaults, own), [link])
        else:
            parent_link = ("families", parent) if parent in self.families else ("models", parent)
            names = " -> ".join(n for _, n in (*stack, link))
            if parent not in self.families and parent not in self.models:
                close = difflib.get_close_matches(parent, [*self.families, *self.models], n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self._problem(
                    [link], ("extends",), f"unknown parent {parent!r} (chain: {names} -> {parent}){hint}"
                )
                result = (None, [link])
            elif parent_link in stack or parent_link == link:
                self._problem([link], ("extends",), f"inheritance cycle: {names} -> {parent}")
                result = (None, [link])
            else:
                base, chain = self._resolve(parent_link, (*stack, link))
                result = (None if base is None else deep_merge(base, own), [link, *chain])
        self._resolved[link] = result
        return result

    def _build_one(self, name: str, path: tuple[str, str]) -> ModelConfig | None:
        self._resolved.pop(path, None)  # register_model may replace an entry
        resolved, chain = self._resolve(path)
        if resolved is None:
            return None
        entry = dict(resolved)
        before = len(self.problems)
        self._check(entry, chain)
        if len(self.problems) > before:
            return None
        # A device config that plans a transfer gets the model-wide transfer fields under its own.
        model_transfer = entry.get("transfer") or {}
        devices = entry.get("device_configs") or {}
        entry["device_configs"] = {
            tp: {**raw, "transfer": deep_merge(model_transfer, raw["transfer"])}
            if raw.get("transfer")
            else raw
            for tp, raw in devices.items()
        }
        device_sources = {
            int(tp): self.document.location(self._locate(chain, ("device_configs", tp))) for tp in devices
        }
        location = self.document.location(path)
        return ModelConfig.from_entry(name, entry, location, device_sources, self._shared)

    def _check(self, entry: dict[str, Any], chain: list[tuple[str, str]]) -> None:
        arch = entry.get("architecture")
        if not isinstance(arch, Mapping) or not arch.get("model_type"):
            self._problem(
                chain, ("architecture",), "missing required key 'model_type' (neither written nor inherited)"
            )
            return
        for key_path in _null_paths(arch, ("architecture",)):
            self._problem(
                chain,
                key_path,
                "expected a value to match, found null (remove the attribute to ignore it in matching)",
            )
        runtimes = entry.get("supported_configs") or []
        if not runtimes:
            self._problem(chain, ("supported_configs",), "expected at least one runtime config, found none")
        seen: dict[Any, int] = {}
        for i, rc in enumerate(runtimes):
            key = _runtime_key(rc)
            if key in seen:
                self._problem(
                    chain,
                    ("supported_configs", i),
                    f"duplicate runtime config (same as supported_configs.{seen[key]})",
                )
            else:
                seen[key] = i
        tp_sizes = {rc.get("tp_size") for rc in runtimes}
        for tp in entry.get("device_configs") or {}:
            if int(tp) not in tp_sizes:
                sizes = ", ".join(str(s) for s in sorted(tp_sizes)) or "none"
                self._problem(
                    chain,
                    ("device_configs", tp),
                    f"device config for tp_size {tp} has no runtime config of that tp_size "
                    f"(supported_configs tp_size: {sizes})",
                )
        reference = entry.get("configurator")
        if reference:
            problem = self._check_configurator(reference)
            if problem:
                self._problem(chain, ("configurator",), problem)

    def _check_configurator(self, reference: str) -> str | None:
        if reference not in self._configurators_checked:
            try:
                import_configurator(reference)
                self._configurators_checked[reference] = None
            except ConfigError as error:
                self._configurators_checked[reference] = str(error)
        return self._configurators_checked[reference]


_ABSENT: Any = object()


def _null_paths(mapping: Mapping[str, Any], prefix: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    out = []
    for key, value in mapping.items():
        if value is None:
            out.append((*prefix, key))
        elif isinstance(value, Mapping):
            out.extend(_null_paths(value, (*prefix, key)))
    return out


def _runtime_key(rc: Mapping[str, Any]) -> Any:
    """Identity of a runtime config; static shapes compare as a set (their order means nothing)."""
    if rc.get("cb"):
        return (True, rc.get("tp_size"), rc.get("max_model_len"), rc.get("max_num_seqs"))
    shapes = frozenset(tuple(s) for s in rc.get("warmup_shapes") or ())
    return (False, rc.get("tp_size"), shapes)


def import_configurator(reference: str) -> type:
    """The class named by ``module.path:ClassName``; it must have a ``configure`` method."""
    module_name, _, class_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError([f"cannot import configurator module {module_name!r}: {error}"]) from error
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ConfigError([f"expected a class named {class_name!r} in module {module_name!r}, found none"])
    if not callable(getattr(cls, "configure", None)):
        raise ConfigError(
            [f"expected configurator class {reference!r} to have a configure method, found none"]
        )
    return cls


class ModelConfigRegistry:
    """Every registered model, matchable against HF configs (threading: see the module docstring)."""

    def __init__(self, config_path: str | os.PathLike[str] | None = None):
        self._lock = threading.RLock()
        path = file_path(config_path, "config_path") if config_path is not None else default_config_path()
        self._state = load_registry_file(path)

    @property
    def config_path(self) -> str:
        return self._state.path

    def reload(self, config_path: str | os.PathLike[str] | None = None) -> None:
        """Re-read the file (or another one); on any error the current registry keeps serving."""
        with self._lock:
            path = file_path(config_path, "config_path") if config_path is not None else self._state.path
            self._state = load_registry_file(path)

    def list_models(self) -> list[str]:
        return list(self._state.models)

    def get_model_config(self, name: str) -> ModelConfig:
        state = self._state
        if not isinstance(name, str):
            raise MatchError(f"expected a model name (a string, as `modelreg models` lists), found {name!r}")
        model = state.models.get(name)
        if model is None:
            close = difflib.get_close_matches(name, list(state.models), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else "; `modelreg models` lists them"
            raise MatchError(f"no model named {name!r} in {state.path}{hint}")
        return model

    def register_model(self, name: str, entry: Mapping[str, Any]) -> ModelConfig:
        """Add (or replace) one entry at runtime, validated exactly like the file's entries."""
        if not isinstance(name, str) or not name:
            raise ConfigError([f"register_model: expected a non-empty model name, found {name!r}"])
        entry = _plain_mapping(entry)
        with self._lock:
            state = self._state
            origin = f"register_model({name!r})"
            data = {
                "version": 1,
                "defaults": state.defaults,
                "families": state.families,
                "models": {**state.raw_entries, name: entry},
            }
            document = YamlDocument(origin, data)
            schema = load_schema()
            entry_schema = {"$ref": "#/$defs/model", "$defs": schema["$defs"]}
            problems = schema_errors(document, entry_schema, root=("models", name))
            if problems:
                raise ConfigError(problems)
            base = state.document or YamlDocument(state.path, {})
            extras = {
                k: v for k, v in state.raw_entries.items() if k not in (base.data or {}).get("models", {})
            }
            extras[name] = entry
            self._state = _build(base, extras)
            return self._state.models[name]

    # --- matching -------------------------------------------------------------------------------------

    def match(
        self,
        source: Any,
        *,
        model_id: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
    ) -> MatchResult:
        """Resolve ``source`` to a HF config and find its entry (name None when nothing matches)."""
        config, origin, resolved_id = resolve_config(
            source, trust_remote_code=trust_remote_code, revision=revision
        )
        model_id = model_id or resolved_id
        name = self._state.index.find(config, (model_id, _name_or_path(config)))
        return MatchResult(name, config, origin, model_id)

    def find_matching_model(self, source: Any, *, model_id: str | None = None) -> str | None:
        """The name of the most specific entry matching ``source`` (see :meth:`match`), or None."""
        if isinstance(source, Mapping) or _is_config_object(source):
            model_id = model_id or getattr(source, "model", None)
            config = source.hf_config if hasattr(source, "hf_config") else source
            preferred = (model_id if isinstance(model_id, str) else None, _name_or_path(config))
            return self._state.index.find(config, preferred)
        return self.match(source, model_id=model_id).name

    def explain(
        self, source: Any, *, trust_remote_code: bool = False, revision: str | None = None
    ) -> list[CandidateReport]:
        """Every entry of the config's model_type with each attribute's expected and actual value."""
        result = self.match_or_none(source, trust_remote_code=trust_remote_code, revision=revision)
        config = result.hf_config
        reports = []
        for name, pattern in self._state.index.same_type(get_attribute(config, "model_type")):
            reports.append(
                CandidateReport(
                    name=name,
                    matched=ModelMatcher.matches(config, pattern),
                    field_count=pattern.field_count,
                    checks=ModelMatcher.compare(config, pattern),
                    chosen=name == result.name,
                )
            )
        return reports

    def match_or_none(self, source: Any, **kwargs: Any) -> MatchResult:
        """Like :meth:`match`, but an ambiguity yields ``name=None`` instead of raising (for explanations)."""
        try:
            return self.match(source, **kwargs)
        except MatchError:
            config, origin, model_id = resolve_config(source, **kwargs)
            return MatchResult(None, config, origin, model_id)

    def get_configurator(self, name: str) -> Any:
        """An instance of the entry's configurator class (``DefaultConfigurator`` unless it names one)."""
        model = self.get_model_config(name)
        reference = model.configurator or DEFAULT_CONFIGURATOR
        try:
            cls = import_configurator(reference)
        except ConfigError as error:
            where = str(model.source) if model.source else self._state.path
            raise ConfigError(
                [f"{where}: {format_key_path(('models', name, 'configurator'))}: {error}"]
            ) from None
        return cls(model)

    def location(self, key_path: tuple[Any, ...]) -> Location:
        """Where ``key_path`` is written in the registry file (for other modules' error messages)."""
        document = self._state.document
        return document.location(key_path) if document else Location(self._state.path)


def _plain_mapping(value: Any) -> Any:
    """Plain dicts and lists all the way down, as the loader would produce them."""
    if isinstance(value, Mapping):
        return {k: _plain_mapping(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_mapping(v) for v in value]
    return value


def _is_config_object(source: Any) -> bool:
    return hasattr(source, "hf_config") or (
        hasattr(source, "model_type") and not isinstance(source, (str, os.PathLike))
    )


def _name_or_path(config: Any) -> str | None:
    value = get_attribute(config, "_name_or_path")
    return value if isinstance(value, str) and value else None


def resolve_config(
    source: Any, *, trust_remote_code: bool = False, revision: str | None = None
) -> tuple[Any, str, str | None]:
    """``(config to match on, origin, model_id)``: a transformers config when it knows the model_type.

    Dicts and config objects given by the caller are matched as given.
    """
    if isinstance(source, Mapping):
        return source, "mapping", _name_or_path(source)
    if _is_config_object(source):
        model_id = getattr(source, "model", None)
        config = source.hf_config if hasattr(source, "hf_config") else source
        return config, f"{type(config).__name__} object", model_id if isinstance(model_id, str) else None
    resolved = load_config_dict(source, revision=revision)
    if trust_remote_code:
        config = load_hf_config(source, trust_remote_code=True, revision=revision)
    else:
        config = load_hf_config(resolved)
    return config, resolved.origin, resolved.model_id


_registry: ModelConfigRegistry | None = None
_registry_lock = threading.Lock()


def get_model_registry(config_path: str | os.PathLike[str] | None = None) -> ModelConfigRegistry:
    """The process-wide registry, loaded once however many threads ask at the same moment.

    The file is ``config_path``, else ``MODELREG_CONFIG_FILE``, else the packaged
    registry; asking for a different file than the one loaded reloads it.
    """
    global _registry
    wanted = file_path(config_path, "config_path") if config_path is not None else default_config_path()
    with _registry_lock:
        if _registry is None:
            _registry = ModelConfigRegistry(wanted)
        elif os.path.abspath(_registry.config_path) != os.path.abspath(wanted):
            _registry.reload(wanted)
        return _registry
