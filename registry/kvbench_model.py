"""KVBench's architecture YAMLs, and KVBench's own KV arithmetic for compatibility.

KVBench (NIXL's ``benchmark/kvbench``) describes a model in a short YAML
(``model_name``, ``num_layers``, head counts, MLA dimensions) and sizes IOs with
per-class formulas. Two jobs live here: turn such a YAML into the config fields
:func:`registry.kv_geometry.kv_geometry` reads (so the same file gets the exact
geometry), and reproduce KVBench's numbers bit for bit under ``--compat kvbench``
— including its float rounding — so published KVBench plans can be checked.
The differences are documented in ``docs/kvbench-differences.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from registry.errors import ConfigError, Location, UsageError

# KVBench's precision table (models/utils.py get_precision_size): nothing else is accepted.
KVBENCH_PRECISION = {"fp8": 1, "int8": 1, "fp16": 2, "bfloat16": 2}

# Fields that mark a mapping as a KVBench architecture rather than a HF config.
_MARKERS = ("model_name", "num_layers")
_KNOWN = {
    "model_name",
    "num_layers",
    "num_query_heads",
    "num_query_heads_with_mha",
    "num_kv_heads",
    "gqa_num_queries_in_group",
    "query_head_dimension",
    "embedding_dimension",
    "rope_mla_dimension",
    "mla_latent_vector_dimension",
    "num_model_params",
}


def is_kvbench_model(data: Any) -> bool:
    """True for a KVBench architecture mapping (``model_name`` + ``num_layers``, no ``model_type``)."""
    return isinstance(data, Mapping) and all(k in data for k in _MARKERS) and "model_type" not in data


def precision_bytes(mode: str, field_name: str) -> int:
    if mode not in KVBENCH_PRECISION:
        raise UsageError(
            f"KVBench compatibility: unsupported {field_name} {mode!r}; valid: {', '.join(KVBENCH_PRECISION)}"
        )
    return KVBENCH_PRECISION[mode]


@dataclass(frozen=True)
class KVBenchModel:
    """One KVBench architecture: an MLA latent, or KV heads × head dimension.

    ``kv_heads`` may be fractional: KVBench's Llama class divides query heads by
    the group size in floating point.
    """

    model_name: str
    num_layers: int
    mla_dim: int | None = None
    kv_heads: float | None = None
    head_dim: int | None = None
    num_query_heads: int | None = None
    embedding_dimension: int | None = None
    rope_mla_dimension: int | None = None
    num_model_params: int | None = None
    origin: str = ""

    @property
    def is_mla(self) -> bool:
        return self.mla_dim is not None

    def kv_size_per_token(self, model_quant_mode: str, kvcache_quant_mode: str, token_count: int = 1) -> int:
        """KVBench's ``get_kv_size_per_token``: all layers, not divided by TP.

        MLA is sized by ``kvcache_quant_mode``; GQA classes use ``model_quant_mode``.
        """
        if self.is_mla:
            per_token = int(
                self.mla_dim * precision_bytes(kvcache_quant_mode, "kvcache_quant_mode") * self.num_layers
            )
            return per_token * token_count
        prec = precision_bytes(model_quant_mode, "model_quant_mode")
        return int(self.num_layers * self.kv_heads * self.head_dim * 2 * prec * token_count)

    def io_size(
        self,
        *,
        tp_size: int,
        pp_size: int,
        access_pattern: str,
        page_size: int,
        model_quant_mode: str,
        kvcache_quant_mode: str,
    ) -> int:
        """KVBench's ``get_io_size``: one layer's share divided by TP (MLA too), then
        ×ceil(layers/PP) for MLA or ×(layers/PP) as a float for GQA on block access."""
        per_layer = int(self.kv_size_per_token(model_quant_mode, kvcache_quant_mode) / self.num_layers)
        if per_layer <= 0:
            raise UsageError(f"KVBench compatibility: {self.model_name} has a KV size of 0 bytes per layer")
        if self.is_mla:
            io: float = per_layer / tp_size
            if access_pattern == "block":
                io = io * math.ceil(self.num_layers / pp_size)
            return int(io * page_size)
        io = int(per_layer / tp_size)
        if access_pattern == "block":
            io = int(io * (self.num_layers / pp_size))
        return int(io * page_size)

    def batch_size(
        self, *, io_size: int, isl: int, num_requests: int, model_quant_mode: str, kvcache_quant_mode: str
    ) -> int:
        """KVBench's ``get_batch_size``: ceil(KV of isl tokens / io × requests), in floats."""
        kv = self.kv_size_per_token(model_quant_mode, kvcache_quant_mode, isl)
        return math.ceil((kv / io_size) * num_requests)

    def to_hf_config(self) -> dict[str, Any]:
        """The HF-style fields :func:`kv_geometry` reads, for native geometry of this file."""
        data: dict[str, Any] = {
            "model_type": "kvbench",
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_query_heads or 1,
        }
        if self.is_mla:
            data["kv_lora_rank"] = self.mla_dim - (self.rope_mla_dimension or 0)
            data["qk_rope_head_dim"] = self.rope_mla_dimension or 0
        else:
            data["num_key_value_heads"] = int(self.kv_heads)
            data["head_dim"] = self.head_dim
        if self.embedding_dimension:
            data["hidden_size"] = self.embedding_dimension
        return data

    @classmethod
    def from_geometry(cls, geometry: Any, model_name: str) -> KVBenchModel:
        """KVBench's view of a model whose geometry came from its HF config.

        KVBench knows no sliding or stateful layers: every KV layer counts whole.
        """
        if geometry.kv_layers == 0:
            raise UsageError(f"{model_name} is {geometry.attention}: it has no KV cache to transfer")
        if geometry.kv_kind == "mla":
            return cls(model_name=model_name, num_layers=geometry.kv_layers, mla_dim=geometry.mla_latent_dim)
        return cls(
            model_name=model_name,
            num_layers=geometry.kv_layers,
            kv_heads=geometry.num_kv_heads,
            head_dim=geometry.head_dim,
            num_query_heads=geometry.num_attention_heads,
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], origin: str = "", locate: Any = None) -> KVBenchModel:
        """Validate a KVBench architecture mapping; problems name the file, line and key."""
        where = locate or (lambda key_path: Location(origin or "<model>"))
        problems: list[str] = []

        def need_int(key: str, required: bool = True) -> int | None:
            value = data.get(key)
            if value is None:
                if required:
                    problems.append(
                        ConfigError.at(where((key,)), "required field is missing", (key,)).problems[0]
                    )
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(
                    ConfigError.at(
                        where((key,)), f"expected a positive integer, found {value!r}", (key,)
                    ).problems[0]
                )
                return None
            return value

        for key in data:
            if key not in _KNOWN:
                problems.append(
                    ConfigError.at(
                        where((key,)), f"unknown field; expected one of {', '.join(sorted(_KNOWN))}", (key,)
                    ).problems[0]
                )
        name = data.get("model_name")
        if not isinstance(name, str) or not name:
            problems.append(
                ConfigError.at(
                    where(("model_name",)), "expected a non-empty string", ("model_name",)
                ).problems[0]
            )
        layers = need_int("num_layers")
        common = {
            "num_query_heads": need_int("num_query_heads", False)
            or need_int("num_query_heads_with_mha", False),
            "embedding_dimension": need_int("embedding_dimension", False),
            "num_model_params": need_int("num_model_params", False),
        }
        fields: dict[str, Any]
        if "mla_latent_vector_dimension" in data or "rope_mla_dimension" in data:
            latent = need_int("mla_latent_vector_dimension")
            rope = need_int("rope_mla_dimension")
            fields = {"mla_dim": (latent or 0) + (rope or 0), "rope_mla_dimension": rope}
        else:
            head_dim = need_int("query_head_dimension")
            if "num_kv_heads" in data:
                kv_heads: float | None = need_int("num_kv_heads")
            elif "gqa_num_queries_in_group" in data:
                heads = need_int("num_query_heads_with_mha")
                group = need_int("gqa_num_queries_in_group")
                kv_heads = heads / group if heads and group else None
            else:
                kv_heads = None
                problems.append(
                    ConfigError.at(
                        where(()),
                        "needs mla_latent_vector_dimension + rope_mla_dimension (MLA), num_kv_heads, "
                        "or num_query_heads_with_mha + gqa_num_queries_in_group",
                    ).problems[0]
                )
            fields = {"kv_heads": kv_heads, "head_dim": head_dim}
        if problems:
            raise ConfigError(problems)
        return cls(model_name=name, num_layers=layers, origin=origin, **common, **fields)


def load_kvbench_model(path: str) -> KVBenchModel:
    """Read a KVBench architecture YAML with the project's safe loader."""
    from registry.loader import load_yaml_document

    document = load_yaml_document(path)
    if not isinstance(document.data, Mapping):
        raise ConfigError.at(Location(str(path)), "expected a mapping of KVBench architecture fields")
    return KVBenchModel.from_mapping(document.data, str(path), document.location)
