"""Turn whatever names a model into its Hugging Face config.

A user may hand us a model ID, a model directory, a ``config.json`` path, a dict,
a transformers ``PretrainedConfig`` or vLLM's ``ModelConfig``. Model IDs resolve
offline-first: the local HF cache, then (only when online and not cached) a
download of ``config.json`` alone, then the snapshot embedded in this package, so
the packaged registry works without network. ``transformers`` costs about a second
to import and ``huggingface_hub`` a good part of that, so each is imported only on
the path that needs it: a local file never pays for either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.errors import ResolutionError

EMBEDDED_DIR = Path(__file__).resolve().parent / "hf_configs"
CONFIG_NAME = "config.json"
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ConfigSource:
    """A raw ``config.json`` dict, where it came from, and the model ID when known.

    ``origin`` is shown to users (``modelreg match``) so they can tell a stale
    embedded snapshot from their own cached download.
    """

    data: dict[str, Any]
    origin: str
    model_id: str | None = None


def load_config_dict(source: Any, *, revision: str | None = None) -> ConfigSource:
    """Resolve ``source`` to its raw config dict without importing transformers."""
    if isinstance(source, ConfigSource):
        return source
    if isinstance(source, Mapping):
        data = dict(source)
        return ConfigSource(data, "mapping", _name_or_path(data))
    if hasattr(source, "hf_config"):  # vLLM's ModelConfig
        inner = load_config_dict(source.hf_config, revision=revision)
        model_id = getattr(source, "model", None) or inner.model_id
        return ConfigSource(inner.data, inner.origin, model_id if isinstance(model_id, str) else None)
    if callable(getattr(source, "to_dict", None)) and hasattr(source, "model_type"):  # PretrainedConfig
        data = source.to_dict()
        # to_dict() stamps the installed transformers version; keep the one the config was written with.
        written = getattr(source, "transformers_version", None)
        if written is not None:
            data["transformers_version"] = written
        return ConfigSource(data, f"transformers {type(source).__name__}", _name_or_path(data))
    if isinstance(source, (str, os.PathLike)):
        return _from_path_or_id(os.fspath(source), revision)
    raise ResolutionError(
        f"cannot read a HF config from a {type(source).__name__}: expected a model ID, a model directory, "
        "a config.json path, a dict, a transformers PretrainedConfig or an object with .hf_config"
    )


def load_hf_config(source: Any, *, trust_remote_code: bool = False, revision: str | None = None) -> Any:
    """The transformers config for ``source``, or the raw dict when transformers lacks its model_type.

    Matching against the config class (defaults filled in, sub-configs as
    objects) is what the model will see at serving time; the raw dict is the
    fallback so that a model_type newer than the installed transformers still
    matches. Remote code runs only when the caller explicitly asks for it.
    """
    if _is_pretrained_config(source):
        return source
    if hasattr(source, "hf_config") and _is_pretrained_config(source.hf_config):
        return source.hf_config
    resolved = load_config_dict(source, revision=revision)
    model_type = resolved.data.get("model_type")
    from transformers import CONFIG_MAPPING

    if isinstance(model_type, str) and model_type in CONFIG_MAPPING:
        try:
            config = CONFIG_MAPPING[model_type].from_dict(dict(resolved.data))
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            raise ResolutionError(
                f"{resolved.origin}: transformers cannot build a {model_type!r} config from it: {error}"
            ) from error
        if resolved.model_id and not getattr(config, "_name_or_path", ""):
            config._name_or_path = resolved.model_id
        return config
    if trust_remote_code and isinstance(source, (str, os.PathLike)):
        return _remote_code_config(os.fspath(source), revision)
    return resolved.data


def _is_pretrained_config(obj: Any) -> bool:
    return any(cls.__name__ in ("PretrainedConfig", "PreTrainedConfig") for cls in type(obj).__mro__)


def _remote_code_config(source: str, revision: str | None) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=True, revision=revision)
    except (OSError, ValueError) as error:
        raise ResolutionError(f"{source}: transformers cannot load it with remote code: {error}") from error


def _name_or_path(data: Mapping[str, Any]) -> str | None:
    value = data.get("_name_or_path")
    return value if isinstance(value, str) and value else None


def _looks_like_path(text: str) -> bool:
    """A string that can only be a filesystem path, never a ``org/name`` model ID."""
    return text.startswith((".", "/", "~")) or text.endswith(".json") or text.count("/") > 1


def _from_path_or_id(text: str, revision: str | None) -> ConfigSource:
    if not text.strip():
        raise ResolutionError(
            "expected a model ID, a model directory or a config.json path, found an empty string"
        )
    path = Path(text).expanduser()
    if path.is_dir():
        config = path / CONFIG_NAME
        if not config.is_file():
            raise ResolutionError(f"{path}: the directory has no {CONFIG_NAME}; point at a model directory")
        return ConfigSource(read_config_file(config), f"file: {config}", None)
    if path.is_file():
        return ConfigSource(read_config_file(path), f"file: {path}", None)
    if _looks_like_path(text):
        raise ResolutionError(
            f"{text}: no such file or directory (expected a config.json or a model directory)"
        )
    return _from_model_id(text, revision)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a ``config.json``; ``Infinity``/``NaN`` are accepted as real configs carry them."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ResolutionError(f"{path}: cannot read it: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ResolutionError(f"{path}: expected UTF-8 JSON, found undecodable bytes") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ResolutionError(f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}") from error
    if not isinstance(data, dict):
        raise ResolutionError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def hub_offline() -> bool:
    """Read at call time (huggingface_hub reads it once at import)."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def hub_cache_dir() -> Path:
    """The HF hub cache, following HF_HUB_CACHE / HF_HOME / XDG_CACHE_HOME at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "huggingface" / "hub"


def embedded_path(model_id: str) -> Path | None:
    """The snapshot shipped for ``model_id``, if any (IDs cannot escape the folder)."""
    parts = model_id.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    path = EMBEDDED_DIR.joinpath(*parts, CONFIG_NAME)
    return path if path.is_file() else None


def _from_model_id(model_id: str, revision: str | None) -> ConfigSource:
    """HF cache, then the embedded snapshot, then a download of ``config.json`` alone.

    The snapshot comes before the network on purpose: it is the very file the
    packaged registry entry was written against, and a host without network
    would otherwise spend ~20 s in huggingface_hub's retries before falling back.
    A pinned ``revision`` never resolves to the snapshot (its revision is unknown).
    """
    cached = _from_cache(model_id, revision)
    if cached is not None:
        return cached
    snapshot = embedded_path(model_id)
    if snapshot is not None and revision is None:
        return ConfigSource(read_config_file(snapshot), "embedded snapshot", model_id)
    fetched, problem = _download(model_id, revision)
    if fetched is not None:
        return fetched
    wanted = f" at revision {revision}" if revision else ""
    fix = (
        "set HF_HUB_OFFLINE=0 to let it download config.json, "
        if hub_offline()
        else f"download it (huggingface-cli download {model_id} config.json), "
    )
    raise ResolutionError(
        f"{model_id}: no config.json{wanted} in the HF cache ({hub_cache_dir()}) and no embedded snapshot "
        f"({problem}); {fix}or pass the path of a model directory or config.json instead"
    )


def _from_cache(model_id: str, revision: str | None) -> ConfigSource | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        cached = try_to_load_from_cache(model_id, CONFIG_NAME, cache_dir=hub_cache_dir(), revision=revision)
    except ValueError:  # not a valid repo ID: it cannot be cached either
        return None
    if isinstance(cached, str) and os.path.isfile(cached):
        return ConfigSource(read_config_file(Path(cached)), f"HF cache: {cached}", model_id)
    return None


def _download(model_id: str, revision: str | None) -> tuple[ConfigSource | None, str]:
    """Fetch ``config.json`` alone when online; the reason it did not, otherwise."""
    if hub_offline():
        return None, "HF_HUB_OFFLINE is set"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None, "huggingface_hub is not installed"
    try:
        path = hf_hub_download(
            model_id, CONFIG_NAME, revision=revision, cache_dir=hub_cache_dir(), etag_timeout=5
        )
    except Exception as error:  # any hub, HTTP or network failure is reported the same way
        return None, f"download failed: {type(error).__name__}"
    return ConfigSource(read_config_file(Path(path)), f"HF hub download: {path}", model_id), ""
