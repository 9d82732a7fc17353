"""modelreg's registry: what a model is and what is declared for it.

The public API is re-exported lazily so that ``import registry`` stays cheap on
startup paths (the CLI's ``models`` command must not pay for transformers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "ArchitecturePattern",
    "ConfigError",
    "DeviceConfig",
    "ModelConfig",
    "ModelConfigRegistry",
    "ModelMatcher",
    "ModelRegError",
    "RuntimeConfig",
    "get_model_registry",
]

_EXPORTS = {
    "ConfigError": "registry.errors",
    "ModelRegError": "registry.errors",
    "ArchitecturePattern": "registry.model_config",
    "DeviceConfig": "registry.model_config",
    "ModelConfig": "registry.model_config",
    "RuntimeConfig": "registry.model_config",
    "ModelMatcher": "registry.model_matcher",
    "ModelConfigRegistry": "registry.model_registry",
    "get_model_registry": "registry.model_registry",
}

if TYPE_CHECKING:  # pragma: no cover
    from registry.errors import ConfigError, ModelRegError
    from registry.model_config import ArchitecturePattern, DeviceConfig, ModelConfig, RuntimeConfig
    from registry.model_matcher import ModelMatcher
    from registry.model_registry import ModelConfigRegistry, get_model_registry


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
