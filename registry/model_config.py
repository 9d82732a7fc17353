"""The registry's data: what a model entry declares, after defaults and inheritance.

These dataclasses are immutable views built by the loader from a validated YAML
document; the configurators read them and never write them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_vars": dict(self.env_vars),
            "engine_args": _plain(self.engine_args),
            "sampling_args": _plain(self.sampling_args),
        }


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

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set (``None`` means "not given here")."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "nixlbench"}
        out = {k: v for k, v in out.items() if v is not None}
        if self.nixlbench:
            out["nixlbench"] = dict(self.nixlbench)
        return out


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
    source: Location | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tp_size": self.tp_size, "env_vars": dict(self.env_vars)}
        if self.num_gpu_blocks_override is not None:
            out["num_gpu_blocks_override"] = _plain(self.num_gpu_blocks_override)
        if self.chunked_prefill_config is not None:
            out["chunked_prefill_config"] = dict(self.chunked_prefill_config)
        out["backends"] = {name: b.to_dict() for name, b in self.backends.items()}
        if self.transfer is not None:
            out["transfer"] = self.transfer.to_dict()
        return out


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

    def get_device_config(self, tp_size: int) -> DeviceConfig | None:
        return self.device_configs.get(tp_size)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready) of the merged entry, for ``--format json`` and summaries."""
        out: dict[str, Any] = {
            "name": self.name,
            "architecture": _plain(self.architecture.to_dict()),
            "supported_configs": [rc.to_dict() for rc in self.supported_configs],
            "device_configs": {tp: dc.to_dict() for tp, dc in sorted(self.device_configs.items())},
            "env_vars": dict(self.env_vars),
            "backends": {name: b.to_dict() for name, b in self.backends.items()},
        }
        if self.transfer is not None:
            out["transfer"] = self.transfer.to_dict()
        if self.configurator is not None:
            out["configurator"] = self.configurator
        if self.source is not None:
            out["source"] = str(self.source)
        return out

    @classmethod
    def from_entry(
        cls,
        name: str,
        entry: Mapping[str, Any],
        source: Location | None = None,
        device_sources: Mapping[int, Location] | None = None,
        shared: dict[int, Any] | None = None,
    ) -> ModelConfig:
        """Build from an entry whose defaults and inheritance are merged and which passed validation.

        ``shared`` lets a caller building many entries reuse the runtime configs of
        a list inherited by all of them (keyed by the list's ``id``; the caller
        keeps those lists alive), which matters at 10,000 models.
        """
        device_sources = device_sources or {}
        raw_runtimes = entry.get("supported_configs") or []
        runtimes = shared.get(id(raw_runtimes)) if shared is not None else None
        if runtimes is None:
            runtimes = tuple(runtime_config_from_dict(rc) for rc in raw_runtimes)
            if shared is not None:
                shared[id(raw_runtimes)] = runtimes
        arch = dict(entry["architecture"])
        model_type = arch.pop("model_type")
        devices = {
            int(tp): device_config_from_dict(int(tp), raw or {}, device_sources.get(int(tp)))
            for tp, raw in (entry.get("device_configs") or {}).items()
        }
        return cls(
            name=name,
            architecture=ArchitecturePattern(model_type, arch),
            supported_configs=runtimes,
            device_configs=dict(sorted(devices.items())),
            env_vars=dict(entry.get("env_vars") or {}),
            backends=_shared(shared, entry.get("backends"), backends_from_dict),
            transfer=transfer_spec_from_dict(entry.get("transfer")),
            configurator=entry.get("configurator"),
            source=source,
        )


def _shared(memo: dict[int, Any] | None, raw: Any, build: Any) -> Any:
    """``build(raw)``, reused for the very same ``raw`` object (inherited unchanged by many entries)."""
    if memo is None:
        return build(raw)
    found = memo.get(id(raw))
    if found is None:
        found = memo[id(raw)] = build(raw)
    return found


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: mappings merge key by key, everything else (lists too) is replaced.

    Lists replace rather than concatenate so that a model can narrow its
    family's ``supported_configs`` instead of only ever adding to them.
    """
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def runtime_config_from_dict(raw: Mapping[str, Any]) -> RuntimeConfig:
    if raw["cb"]:
        return RuntimeConfig(True, raw["tp_size"], raw.get("max_model_len"), raw.get("max_num_seqs"))
    shapes = tuple(tuple(int(v) for v in shape) for shape in raw.get("warmup_shapes") or ())
    return RuntimeConfig(False, raw["tp_size"], warmup_shapes=shapes)  # type: ignore[arg-type]


def backends_from_dict(raw: Mapping[str, Any] | None) -> dict[str, BackendSettings]:
    """Every known backend gets an entry, so consumers never test for absence."""
    raw = raw or {}
    return {
        name: BackendSettings(
            env_vars=dict((raw.get(name) or {}).get("env_vars") or {}),
            engine_args=dict((raw.get(name) or {}).get("engine_args") or {}),
            sampling_args=dict((raw.get(name) or {}).get("sampling_args") or {}),
        )
        for name in BACKENDS
    }


def transfer_spec_from_dict(raw: Mapping[str, Any] | None) -> TransferSpec | None:
    if not raw:
        return None
    fields = {k: v for k, v in raw.items() if k != "nixlbench"}
    return TransferSpec(**fields, nixlbench=dict(raw.get("nixlbench") or {}))


def device_config_from_dict(
    tp_size: int, raw: Mapping[str, Any], source: Location | None = None
) -> DeviceConfig:
    blocks = raw.get("num_gpu_blocks_override")
    return DeviceConfig(
        tp_size=tp_size,
        env_vars=dict(raw.get("env_vars") or {}),
        num_gpu_blocks_override=dict(blocks) if isinstance(blocks, Mapping) else blocks,
        chunked_prefill_config=dict(raw["chunked_prefill_config"])
        if raw.get("chunked_prefill_config")
        else None,
        backends=backends_from_dict(raw.get("backends")),
        transfer=transfer_spec_from_dict(raw.get("transfer")),
        source=source,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
