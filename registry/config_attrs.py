"""Reading attributes from a HF config that may be a dict or a config object.

Geometry and parameter counts work on the raw ``config.json`` dict (fast, no
transformers import) and on a transformers ``PretrainedConfig`` alike; a
``null`` in the JSON counts as absent, as transformers treats it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def get_attr(config: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` that is set (not missing, not ``null``) in the config."""
    for name in names:
        value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
        if value is not None:
            return value
    return default


def text_config(config: Any) -> Any:
    """Multimodal configs keep the language model under ``text_config``."""
    inner = get_attr(config, "text_config")
    return inner if inner is not None else config
