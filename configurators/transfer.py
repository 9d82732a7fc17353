"""KV-transfer plans: how a disaggregated prefill→decode hand-off moves KV pages.

A plan turns a model's KV geometry and a strategy / runtime / system spec
(KVBench's model config, or a registry entry's ``transfer`` section) into the
three numbers a transfer benchmark needs: the IO size (one page, over the
busiest pipeline stage's layers for block access, or one layer for layer
access), the batch (IOs needed to move every request's prompt KV) and the
buffer that holds it. ``compat="kvbench"`` swaps in KVBench's own arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from configurators.nixlbench import SECTION_SCHEMA as NIXLBENCH_SECTION_SCHEMA
from registry.errors import UsageError
from registry.kv_geometry import KV_DTYPES, KVGeometry, kv_geometry
from registry.kvbench_model import KVBENCH_PRECISION, KVBenchModel
from registry.model_config import DeviceConfig, ModelConfig, TransferSpec

ACCESS_PATTERNS = ("block", "layer")
COMPAT_MODES = ("modelreg", "kvbench")

# What an unset spec field means. KVBench's StrategyConfig defaults both quant
# modes to fp8; natively the KV cache follows the model's dtype.
DEFAULTS: dict[str, Any] = {
    "tp_size": 1,
    "pp_size": 1,
    "num_requests": 1,
    "page_size": 16,
    "access_pattern": "block",
    "osl": 0,
}
KVBENCH_QUANT_DEFAULT = "fp8"

# The YAML file a plan reads: KVBench's three sections (plus the nixlbench flags).
TRANSFER_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "strategy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "tp_size": {"type": "integer", "minimum": 1},
                "pp_size": {"type": "integer", "minimum": 1},
                "model_quant_mode": {"type": "string"},
                "kvcache_quant_mode": {"type": "string"},
            },
        },
        "runtime": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "isl": {"type": "integer", "minimum": 1},
                "osl": {"type": "integer", "minimum": 0},
                "num_requests": {"type": "integer", "minimum": 1},
            },
        },
        "system": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "hardware": {"type": ["string", "null"]},
                "backend": {"type": ["string", "null"]},
                "access_pattern": {"enum": list(ACCESS_PATTERNS)},
                "page_size": {"type": "integer", "minimum": 1},
                "source": {"enum": ["file", "memory", "gpu"]},
                "destination": {"enum": ["file", "memory", "gpu"]},
            },
        },
        "nixlbench": NIXLBENCH_SECTION_SCHEMA,
    },
    # A misspelt section would otherwise be ignored and the plan silently use defaults.
    "additionalProperties": False,
}

SECTIONS = {
    "strategy": ("tp_size", "pp_size", "model_quant_mode", "kvcache_quant_mode"),
    "runtime": ("num_requests", "isl", "osl"),
    "system": ("hardware", "backend", "page_size", "access_pattern"),
}


def spec_from_sections(data: Mapping[str, Any]) -> TransferSpec:
    """A TransferSpec from KVBench's strategy / runtime / system mapping.

    ``system.source`` / ``system.destination`` (KVBench keeps them there) join
    the nixlbench settings.
    """
    values: dict[str, Any] = {}
    for section, names in SECTIONS.items():
        block = data.get(section) or {}
        values.update({name: block[name] for name in names if block.get(name) is not None})
    nixl = dict(data.get("nixlbench") or {})
    system = data.get("system") or {}
    for key in ("source", "destination"):
        if system.get(key) is not None:
            nixl.setdefault(key, system[key])
    return TransferSpec(**values, nixlbench=nixl)


def merge_specs(base: TransferSpec | None, top: TransferSpec | None) -> TransferSpec | None:
    """``top``'s set fields over ``base``'s (nixlbench settings merged key by key)."""
    if base is None or top is None:
        return top or base
    changes = {f.name: getattr(top, f.name) for f in fields(TransferSpec) if f.name != "nixlbench"}
    merged = replace(base, **{k: v for k, v in changes.items() if v is not None})
    return replace(merged, nixlbench={**base.nixlbench, **top.nixlbench})


@dataclass(frozen=True)
class TransferPlan:
    """One planned KV transfer: the layout, the workload and the IO it implies."""

    model: str
    config_file: str | None
    compat: str
    tp_size: int
    pp_size: int
    isl: int
    osl: int
    num_requests: int
    page_size: int
    access_pattern: str
    model_quant_mode: str | None
    kvcache_quant_mode: str
    hardware: str | None
    backend: str | None
    attention: str
    dtype_bytes: int
    kv_bytes_per_token: int
    kv_bytes_per_token_per_gpu: int
    layers_per_io: float
    io_size: int
    io_size_per_token: int
    batch_size: int
    kv_bytes_total: int
    total_buffer_size: int
    nixlbench: Mapping[str, Any]

    def sections(self) -> dict[str, dict[str, Any]]:
        """The plan's inputs in KVBench's strategy / runtime / system layout."""
        nixl = self.nixlbench
        return {
            "strategy": {
                "tp_size": self.tp_size,
                "pp_size": self.pp_size,
                "model_quant_mode": self.model_quant_mode,
                "kvcache_quant_mode": self.kvcache_quant_mode,
            },
            "runtime": {"num_requests": self.num_requests, "isl": self.isl, "osl": self.osl},
            "system": {
                "hardware": self.hardware,
                "backend": self.backend,
                "page_size": self.page_size,
                "access_pattern": self.access_pattern,
                "source": nixl.get("source"),
                "destination": nixl.get("destination"),
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (dict(v) if isinstance(v := getattr(self, f.name), Mapping) else v) for f in fields(self)
        }


class SpecError(UsageError):
    """A bad transfer-spec value; ``field`` names it so callers can point at the file line."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _positive(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(name, f"{name} must be an integer >= {minimum}, found {value!r}")
    return value


def _resolved(spec: TransferSpec, compat: str) -> dict[str, Any]:
    values = {name: getattr(spec, name) for name in _SPEC_FIELDS}
    for name, default in DEFAULTS.items():
        if values[name] is None:
            values[name] = default
    if values["isl"] is None:
        raise SpecError("isl", "isl is not set (set runtime.isl or pass --isl)")
    for name in ("tp_size", "pp_size", "isl", "num_requests", "page_size"):
        _positive(name, values[name])
    _positive("osl", values["osl"], 0)
    if values["access_pattern"] not in ACCESS_PATTERNS:
        raise SpecError(
            "access_pattern",
            f"access_pattern must be one of {', '.join(ACCESS_PATTERNS)}, found {values['access_pattern']!r}",
        )
    if compat == "kvbench":
        for name in ("model_quant_mode", "kvcache_quant_mode"):
            values[name] = values[name] or KVBENCH_QUANT_DEFAULT
            if values[name] not in KVBENCH_PRECISION:
                valid = ", ".join(KVBENCH_PRECISION)
                raise SpecError(name, f"KVBench supports {name} {valid}; found {values[name]!r}")
    else:
        values["kvcache_quant_mode"] = str(values["kvcache_quant_mode"] or "auto").lower()
        if values["kvcache_quant_mode"] not in KV_DTYPES:
            raise SpecError(
                "kvcache_quant_mode",
                f"kvcache_quant_mode {values['kvcache_quant_mode']!r} is not a KV-cache dtype; "
                f"valid: {', '.join(KV_DTYPES)}",
            )
    return values


def plan_transfer(
    geometry_or_config: Any,
    spec: TransferSpec,
    *,
    compat: str | None = None,
    model_name: str | None = None,
    config_file: str | None = None,
) -> TransferPlan:
    """Plan one transfer of ``spec``'s workload for a model.

    ``geometry_or_config`` is a :class:`KVGeometry`, a HF config (dict or
    PretrainedConfig) or a :class:`KVBenchModel`. ``compat`` is ``"kvbench"``
    (KVBench's arithmetic), ``"modelreg"`` (exact geometry) or ``None``: KVBench
    for a KVBench architecture, exact otherwise.
    """
    if compat is None:
        compat = "kvbench" if isinstance(geometry_or_config, KVBenchModel) else "modelreg"
    if compat not in COMPAT_MODES:
        raise UsageError(f"--compat must be one of {', '.join(COMPAT_MODES)}, found {compat!r}")
    v = _resolved(spec, compat)
    if isinstance(geometry_or_config, KVBenchModel):
        name = model_name or geometry_or_config.model_name
        source: Any = geometry_or_config if compat == "kvbench" else geometry_or_config.to_hf_config()
    else:
        name = model_name or "model"
        source = geometry_or_config
    if compat == "kvbench":
        return _kvbench_plan(source, v, name, config_file)
    if isinstance(source, KVGeometry):
        geometry = source.with_layout(v["tp_size"], v["pp_size"], v["kvcache_quant_mode"])
    else:
        geometry = kv_geometry(
            source, tp_size=v["tp_size"], pp_size=v["pp_size"], kv_dtype=v["kvcache_quant_mode"]
        )
    return _native_plan(geometry, v, name, config_file)


def _native_plan(geometry: KVGeometry, v: dict[str, Any], name: str, config_file: str | None) -> TransferPlan:
    if geometry.kv_layers == 0:
        raise UsageError(f"{name} is {geometry.attention}-only: it has no KV cache to transfer")
    layers = geometry.busiest_stage_kv_layers if v["access_pattern"] == "block" else 1
    io_size = geometry.kv_bytes_per_token_per_layer_per_gpu * layers * v["page_size"]
    kv_total = v["num_requests"] * geometry.kv_bytes_model(v["isl"])
    return _plan(
        v,
        model=name,
        config_file=config_file,
        compat="modelreg",
        attention=geometry.attention,
        dtype_bytes=geometry.dtype_bytes,
        kv_bytes_per_token=geometry.kv_bytes_per_token,
        kv_bytes_per_token_per_gpu=geometry.kv_bytes_per_token_per_gpu,
        layers_per_io=layers,
        io_size=io_size,
        io_size_per_token=io_size // v["page_size"],
        batch_size=-(-kv_total // io_size),
        kv_bytes_total=kv_total,
    )


def _kvbench_plan(source: Any, v: dict[str, Any], name: str, config_file: str | None) -> TransferPlan:
    if isinstance(source, KVBenchModel):
        model = source
    else:
        geometry = source if isinstance(source, KVGeometry) else kv_geometry(source)
        model = KVBenchModel.from_geometry(geometry, name)
    quant = {"model_quant_mode": v["model_quant_mode"], "kvcache_quant_mode": v["kvcache_quant_mode"]}
    layout = {"tp_size": v["tp_size"], "pp_size": v["pp_size"], "access_pattern": v["access_pattern"]}
    io_size = model.io_size(page_size=v["page_size"], **layout, **quant)
    if io_size <= 0:
        raise UsageError(f"KVBench compatibility: the IO size of {name} rounds down to 0 bytes")
    # KVBench's stage: whole layers for MLA, a fractional share for GQA models.
    stage_layers = (
        math.ceil(model.num_layers / v["pp_size"]) if model.is_mla else model.num_layers / v["pp_size"]
    )
    layers = stage_layers if v["access_pattern"] == "block" else 1
    per_token = model.kv_size_per_token(**quant)
    sized_by = quant["kvcache_quant_mode"] if model.is_mla else quant["model_quant_mode"]
    return _plan(
        v,
        model=name,
        config_file=config_file,
        compat="kvbench",
        attention="mla" if model.is_mla else "gqa",
        dtype_bytes=KVBENCH_PRECISION[sized_by],
        kv_bytes_per_token=per_token,
        kv_bytes_per_token_per_gpu=int(per_token / model.num_layers / v["tp_size"] * stage_layers),
        layers_per_io=layers,
        io_size=io_size,
        io_size_per_token=model.io_size(page_size=1, **layout, **quant),
        batch_size=model.batch_size(io_size=io_size, isl=v["isl"], num_requests=v["num_requests"], **quant),
        kv_bytes_total=model.kv_size_per_token(**quant, token_count=v["isl"]) * v["num_requests"],
    )


def _plan(v: dict[str, Any], **computed: Any) -> TransferPlan:
    inputs = {name: v[name] for name in _PLAN_INPUTS}
    total = computed["io_size"] * computed["batch_size"]
    return TransferPlan(**inputs, **computed, total_buffer_size=total)


_SPEC_FIELDS = tuple(f.name for f in fields(TransferSpec))
_PLAN_INPUTS = tuple(f.name for f in fields(TransferPlan) if f.name in _SPEC_FIELDS)


def plan_for_device(
    hf_config: Any, model_config: ModelConfig, device_config: DeviceConfig
) -> TransferPlan | None:
    """The plan of a registry entry's ``transfer`` on one TP size; ``None`` without one.

    The device's ``transfer`` overrides the model-wide one field by field; TP
    defaults to the device config's own size.
    """
    spec = merge_specs(model_config.transfer, device_config.transfer)
    if spec is None:
        return None
    if spec.tp_size is None:
        spec = replace(spec, tp_size=device_config.tp_size)
    return plan_transfer(hf_config, spec, model_name=model_config.name)
