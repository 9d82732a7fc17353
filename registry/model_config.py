"""The registry's data: what a model entry declares, after defaults and inheritance.

These dataclasses are immutable views built by the loader from a validated YAML
document; the configurators read them and never write them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.errors import Location

BACKENDS = ("vllm", "sglang")


@dataclass(frozen=True)
class ArchitecturePattern:
    """The HF-config attributes that identify a model; ``model_type`` is required.

    ``attributes`` holds every other attribute, possibly nested dicts
    (``quantization_config``, ``text_config``) matched key by key.
    """

    model_type: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def field_count(self) -> int:
        """Specificity: attributes plus the keys of nested dicts (recursively).

        The most specific matching pattern wins, so a FP8 variant that adds a
        ``quantization_config`` outranks its unquantized base.
        """
        return 1 + _count(self.attributes)

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": self.model_type, **self.attributes}


def _count(mapping: Mapping[str, Any]) -> int:
    return sum(1 + (_count(v) if isinstance(v, Mapping) else 0) for v in mapping.values())


@dataclass(frozen=True)
class RuntimeConfig:
    """One supported runtime: continuous batching (``cb``) or static warmup shapes.

    ``warmup_shapes`` entries are ``(prompt_len, new_tokens, batch_size)``.
    """

    cb: bool
    tp_size: int
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    warmup_shapes: tuple[tuple[int, int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.cb:
            return {
                "cb": True,
                "tp_size": self.tp_size,
                "max_model_len": self.max_model_len,
                "max_num_seqs": self.max_num_seqs,
            }
        return {"cb": False, "tp_size": self.tp_size, "warmup_shapes": [list(s) for s in self.warmup_shapes]}


@dataclass(frozen=True)
class BackendSettings:
    """Per-backend settings (vllm / sglang): env vars, engine and sampling args."""

    env_vars: Mapping[str, Any] = field(default_factory=dict)
    engine_args: Mapping[str, Any] = field(default_factory=dict)
    sampling_args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TransferSpec:
    """The strategy / runtime / system of a KV-transfer plan (KVBench's model config).

    ``None`` means "not given here": the plan falls back to the deployment's own
    value (``tp_size`` from the device config) or to the documented default.
    ``nixlbench`` holds nixlbench flag values (``backend``, ``source``, ...).
    """

    tp_size: int | None = None
    pp_size: int | None = None
    model_quant_mode: str | None = None
    kvcache_quant_mode: str | None = None
    isl: int | None = None
    osl: int | None = None
    num_requests: int | None = None
    hardware: str | None = None
    backend: str | None = None
    access_pattern: str | None = None
    page_size: int | None = None
    nixlbench: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceConfig:
    """Settings for one tensor-parallel size.

    ``num_gpu_blocks_override`` is an int or a version map: requirement
    specifier (``"torch_sendnn<1.0.3"``, or the legacy ``torch_sendnn_lt_1_0_3``)
    → int, in file order, with an optional ``default``.
    """

    tp_size: int
    env_vars: Mapping[str, Any] = field(default_factory=dict)
    num_gpu_blocks_override: int | Mapping[str, int] | None = None
    chunked_prefill_config: Mapping[str, Any] | None = None
    backends: Mapping[str, BackendSettings] = field(default_factory=dict)
    transfer: TransferSpec | None = None


@dataclass(frozen=True)
class ModelConfig:
    """One registry entry, with ``defaults`` and ``extends`` already merged in.

    ``env_vars``, ``backends`` and ``transfer`` are the model-wide layer (defaults
    under the entry's own); device configs add the per-TP layer on top.
    """

    name: str
    architecture: ArchitecturePattern
    supported_configs: tuple[RuntimeConfig, ...] = ()
    device_configs: Mapping[int, DeviceConfig] = field(default_factory=dict)
    env_vars: Mapping[str, Any] = field(default_factory=dict)
    backends: Mapping[str, BackendSettings] = field(default_factory=dict)
    transfer: TransferSpec | None = None
    configurator: str | None = None
    source: Location | None = None

    @property
    def tp_sizes(self) -> tuple[int, ...]:
        return tuple(sorted({rc.tp_size for rc in self.supported_configs} | set(self.device_configs)))
