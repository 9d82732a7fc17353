"""KV-cache geometry derived from a model's own HF config, for any architecture.

A transfer plan needs one number above all: how many bytes of KV cache a GPU
holds per token. Hand-written per-model classes drift from the checkpoints they
describe, so the geometry is read from ``config.json`` itself (a raw dict or a
transformers ``PretrainedConfig``) with the serving engines' rules: vLLM's
pipeline split, KV heads replicated when TP exceeds them, MLA latents held whole
by every TP rank, sliding-window layers capped at their window, and only
attention layers of hybrid models holding per-token KV.

Nothing here imports transformers: planning from a config.json stays fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from registry.config_attrs import get_attr, text_config
from registry.errors import UsageError

# KV-cache dtype name -> bytes per element. "auto" follows the model's dtype.
KV_DTYPE_BYTES: dict[str, int] = {
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "int8": 1,
    "fp16": 2,
    "float16": 2,
    "half": 2,
    "bf16": 2,
    "bfloat16": 2,
    "fp32": 4,
    "float32": 4,
    "float": 4,
}
KV_DTYPES = ("auto", *KV_DTYPE_BYTES)
PP_RULES = ("vllm", "sglang")

# Layer kinds. Only FULL / SLIDING / CHUNKED hold per-token KV.
FULL, SLIDING, CHUNKED = "full", "sliding", "chunked"
MAMBA, LINEAR, NO_ATTENTION = "mamba", "linear", "none"
KV_KINDS = (FULL, SLIDING, CHUNKED)

# Encoder-only families run without a KV cache in every serving engine.
ENCODER_MODEL_TYPES = frozenset(
    {
        "bert",
        "roberta",
        "xlm-roberta",
        "xlm-roberta-xl",
        "camembert",
        "deberta",
        "deberta-v2",
        "distilbert",
        "electra",
        "albert",
        "mpnet",
        "modernbert",
        "nomic_bert",
        "new",
    }
)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise UsageError(f"the model config's {name} must be a positive integer, found {value!r}")
    return int(value)


def kv_dtype_bytes(kv_dtype: str, model_dtype: str | None) -> int:
    """Bytes per KV element; ``auto`` follows the model (float32 checkpoints are served in 16-bit)."""
    name = str(kv_dtype).lower()
    if name == "auto":
        return min(2, KV_DTYPE_BYTES.get(str(model_dtype).lower(), 2))
    if name not in KV_DTYPE_BYTES:
        raise UsageError(f"unknown KV-cache dtype {kv_dtype!r}; valid: {', '.join(KV_DTYPES)}")
    return KV_DTYPE_BYTES[name]


def split_layers(num_layers: int, pp_size: int, rule: str = "vllm") -> tuple[int, ...]:
    """Layers per pipeline stage.

    vLLM gives the remainder to the stages just before the last (the last one
    also carries the final norm and LM head); SGLang gives it to the last stages.
    """
    if rule not in PP_RULES:
        raise UsageError(f"unknown pipeline split rule {rule!r}; valid: {', '.join(PP_RULES)}")
    if pp_size < 1 or pp_size > num_layers:
        raise UsageError(f"--pp {pp_size} is invalid for a model with {num_layers} layers (1..{num_layers})")
    base, extra = divmod(num_layers, pp_size)
    parts = [base] * pp_size
    for i in range(extra):
        parts[-2 - i if rule == "vllm" else -1 - i] += 1
    return tuple(parts)


def _layer_kinds(cfg: Any, num_layers: int, model_type: str) -> tuple[str, ...]:
    """Per-layer attention kind, from explicit fields or transformers' implicit defaults."""
    layer_types = get_attr(cfg, "layer_types", "layers_block_type")
    if layer_types is not None:
        return tuple(_kind_of(str(t)) for t in layer_types)
    pattern = get_attr(cfg, "hybrid_override_pattern")
    if pattern is not None:  # Nemotron-H: '*' attention, 'M' Mamba-2, '-' MLP, 'E' MoE
        return tuple(FULL if c == "*" else MAMBA if c == "M" else NO_ATTENTION for c in str(pattern))
    if model_type == "gemma2":  # every other layer slides, starting with the first
        return tuple(SLIDING if (i + 1) % 2 else FULL for i in range(num_layers))
    if model_type in ("gemma3", "gemma3_text", "cohere2"):
        period = int(get_attr(cfg, "sliding_window_pattern", "_sliding_window_pattern") or 6)
        return tuple(SLIDING if (i + 1) % period else FULL for i in range(num_layers))
    if model_type in ("llama4", "llama4_text") and get_attr(cfg, "attention_chunk_size") is not None:
        no_rope = get_attr(cfg, "no_rope_layers")
        if no_rope is None:
            interval = int(get_attr(cfg, "no_rope_layer_interval") or 4)
            no_rope = [int((i + 1) % interval != 0) for i in range(num_layers)]
        return tuple(CHUNKED if flag else FULL for flag in no_rope)
    if get_attr(cfg, "sliding_window") is not None:
        use = get_attr(cfg, "use_sliding_window")
        if use is False:
            return (FULL,) * num_layers
        if use is True:  # Qwen2 style: layers from max_window_layers on slide
            first = int(get_attr(cfg, "max_window_layers") or 0)
            return tuple(SLIDING if i >= first else FULL for i in range(num_layers))
        return (SLIDING,) * num_layers  # Mistral style: every layer slides
    return (FULL,) * num_layers


def _kind_of(name: str) -> str:
    name = name.lower()
    if "sliding" in name or name == "local":
        return SLIDING
    if "chunked" in name:
        return CHUNKED
    if "linear" in name:
        return LINEAR
    if "mamba" in name or name in ("ssm", "conv"):
        return MAMBA
    if "attention" in name or name in ("global", "full"):
        return FULL
    return NO_ATTENTION


@dataclass(frozen=True)
class KVGeometry:
    """Where a model's KV cache lives on one TP × PP layout, in bytes.

    ``kv_bytes_per_token_per_layer_per_gpu`` is one attention layer's share on
    one GPU; the ``stage_*`` tuples hold per-stage layer counts so block-access
    IOs can be sized for the busiest stage.
    """

    model_type: str
    attention: str
    kv_kind: str
    num_layers: int
    layer_kinds: tuple[str, ...]
    kv_layers: int
    full_layers: int
    sliding_layers: int
    sliding_window: int | None
    tp_size: int
    pp_size: int
    pp_rule: str
    stage_layers: tuple[int, ...]
    stage_full_layers: tuple[int, ...]
    stage_sliding_layers: tuple[int, ...]
    num_attention_heads: int
    num_kv_heads: int
    kv_heads_per_gpu: int
    kv_heads_replicated: bool
    head_dim: int
    mla_latent_dim: int | None
    model_dtype: str | None
    kv_dtype: str
    dtype_bytes: int
    kv_bytes_per_token_per_layer_per_gpu: int
    kv_bytes_per_token_per_layer: int
    state_bytes_per_sequence_per_gpu: int | None = None
    notes: tuple[str, ...] = ()
    source: Any = field(default=None, repr=False, compare=False)

    @property
    def busiest_stage_kv_layers(self) -> int:
        """KV layers (full + windowed) on the stage holding the most of them."""
        return max(f + s for f, s in zip(self.stage_full_layers, self.stage_sliding_layers))

    @property
    def kv_bytes_per_token_per_gpu(self) -> int:
        """Full-attention KV of one token on the busiest stage (windowed layers excluded)."""
        return max(self.stage_full_layers) * self.kv_bytes_per_token_per_layer_per_gpu

    @property
    def kv_bytes_per_token(self) -> int:
        """One token's KV over every layer of the model, each distinct shard once."""
        return self.kv_layers * self.kv_bytes_per_token_per_layer

    def _window_tokens(self, num_tokens: int) -> int:
        return num_tokens if self.sliding_window is None else min(num_tokens, self.sliding_window)

    def kv_bytes_per_gpu(self, num_tokens: int) -> int:
        """KV bytes one GPU of the busiest stage holds for ``num_tokens`` of one sequence."""
        windowed = self._window_tokens(num_tokens)
        return self.kv_bytes_per_token_per_layer_per_gpu * max(
            f * num_tokens + s * windowed for f, s in zip(self.stage_full_layers, self.stage_sliding_layers)
        )

    def kv_bytes_model(self, num_tokens: int) -> int:
        """The model's KV for ``num_tokens``: what a prefill→decode transfer moves.

        Replicated KV heads and MLA latents count once per stage, not per TP rank.
        """
        tokens = self.full_layers * num_tokens + self.sliding_layers * self._window_tokens(num_tokens)
        return self.kv_bytes_per_token_per_layer * tokens

    def with_layout(
        self, tp_size: int, pp_size: int, kv_dtype: str, pp_rule: str | None = None
    ) -> KVGeometry:
        """The same model on another layout (recomputed from the config it came from)."""
        if (tp_size, pp_size, kv_dtype, pp_rule or self.pp_rule) == (
            self.tp_size,
            self.pp_size,
            self.kv_dtype,
            self.pp_rule,
        ):
            return self
        if self.source is None:
            raise ValueError("this geometry was built without its config; rebuild it with kv_geometry()")
        rule = pp_rule or self.pp_rule
        return kv_geometry(self.source, tp_size=tp_size, pp_size=pp_size, kv_dtype=kv_dtype, pp_rule=rule)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "attention": self.attention,
            "kv_kind": self.kv_kind,
            "num_layers": self.num_layers,
            "kv_layers": self.kv_layers,
            "full_layers": self.full_layers,
            "sliding_layers": self.sliding_layers,
            "sliding_window": self.sliding_window,
            "tp_size": self.tp_size,
            "pp_size": self.pp_size,
            "pp_rule": self.pp_rule,
            "stage_layers": list(self.stage_layers),
            "stage_kv_layers": [f + s for f, s in zip(self.stage_full_layers, self.stage_sliding_layers)],
            "num_attention_heads": self.num_attention_heads,
            "num_kv_heads": self.num_kv_heads,
            "kv_heads_per_gpu": self.kv_heads_per_gpu,
            "kv_heads_replicated": self.kv_heads_replicated,
            "head_dim": self.head_dim,
            "mla_latent_dim": self.mla_latent_dim,
            "model_dtype": self.model_dtype,
            "kv_dtype": self.kv_dtype,
            "dtype_bytes": self.dtype_bytes,
            "kv_bytes_per_token_per_layer_per_gpu": self.kv_bytes_per_token_per_layer_per_gpu,
            "kv_bytes_per_token_per_gpu": self.kv_bytes_per_token_per_gpu,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "state_bytes_per_sequence_per_gpu": self.state_bytes_per_sequence_per_gpu,
            "notes": list(self.notes),
        }


def kv_geometry(
    config: Any,
    *,
    tp_size: int = 1,
    pp_size: int = 1,
    kv_dtype: str = "auto",
    pp_rule: str = "vllm",
) -> KVGeometry:
    """The KV geometry of ``config`` (raw config.json dict or PretrainedConfig) on TP × PP."""
    if isinstance(tp_size, bool) or not isinstance(tp_size, int) or tp_size < 1:
        raise UsageError(f"--tp must be a positive integer, found {tp_size!r}")
    cfg = text_config(config)
    model_type = str(get_attr(cfg, "model_type") or get_attr(config, "model_type") or "unknown")
    num_layers = _positive_int(
        get_attr(cfg, "num_hidden_layers", "n_layer", "num_layers", "n_layers"), "num_hidden_layers"
    )
    heads = _positive_int(
        get_attr(cfg, "num_attention_heads", "n_head", "num_heads", "n_heads"), "num_attention_heads"
    )
    model_dtype = get_attr(cfg, "dtype", "torch_dtype")
    if model_dtype is None:
        model_dtype = get_attr(config, "dtype", "torch_dtype")
    model_dtype = str(model_dtype).replace("torch.", "") if model_dtype is not None else None
    dtype_bytes = kv_dtype_bytes(kv_dtype, model_dtype)
    notes: list[str] = []

    if model_type in ENCODER_MODEL_TYPES:
        kinds: tuple[str, ...] = (NO_ATTENTION,) * num_layers
        attention = kv_kind = "encoder"
        kv_heads, head_dim, latent, per_layer_gpu, per_layer = heads, 0, None, 0, 0
        notes.append("encoder-only model: served without a KV cache")
    else:
        kinds = _layer_kinds(cfg, num_layers, model_type)
        if len(kinds) != num_layers:
            notes.append(f"layer pattern lists {len(kinds)} layers; num_hidden_layers says {num_layers}")
            num_layers = len(kinds)
        latent_rank = get_attr(cfg, "kv_lora_rank")
        if latent_rank is not None:
            # MLA: one compressed latent plus the shared RoPE key per token and layer,
            # held whole by every TP rank. The config's head_dim describes queries.
            latent = int(latent_rank) + int(get_attr(cfg, "qk_rope_head_dim") or 0)
            kv_heads, head_dim, kv_kind = 1, latent, "mla"
            per_layer = per_layer_gpu = latent * dtype_bytes
        else:
            latent = None
            kv_heads = get_attr(
                cfg, "num_key_value_heads", "num_kv_heads", "multi_query_group_num", "n_head_kv"
            )
            if kv_heads is None:
                kv_heads = 1 if get_attr(cfg, "multi_query") else heads
            kv_heads = _positive_int(kv_heads, "num_key_value_heads")
            head_dim = get_attr(cfg, "head_dim", "attention_head_dim", "kv_channels")
            if head_dim is None:
                hidden = _positive_int(get_attr(cfg, "hidden_size", "n_embd", "d_model"), "hidden_size")
                head_dim = hidden // heads
            head_dim = _positive_int(head_dim, "head_dim")
            kv_kind = "mha" if kv_heads == heads else "mqa" if kv_heads == 1 else "gqa"
            per_layer = kv_heads * 2 * head_dim * dtype_bytes
            per_layer_gpu = max(1, kv_heads // tp_size) * 2 * head_dim * dtype_bytes
        present = set(kinds)
        stateful = bool(present & {MAMBA, LINEAR})
        attention = "hybrid" if stateful and present & set(KV_KINDS) else kv_kind
        if get_attr(cfg, "num_nextn_predict_layers"):
            notes.append("MTP layers (num_nextn_predict_layers) excluded: KV only under MTP decoding")

    kv_heads_per_gpu = 1 if latent is not None else max(1, kv_heads // tp_size)
    replicated = latent is None and attention != "encoder" and tp_size > kv_heads
    if replicated:
        notes.append(f"{kv_heads} KV heads < TP {tp_size}: each head held by {tp_size // kv_heads} GPUs")

    window = None
    present = set(kinds)
    if SLIDING in present:
        window = _window(get_attr(cfg, "sliding_window"))
    if CHUNKED in present:
        window = _window(get_attr(cfg, "attention_chunk_size"))
    if window is None:  # no finite window: windowed layers behave as full attention
        kinds = tuple(FULL if k in (SLIDING, CHUNKED) else k for k in kinds)

    stages = split_layers(num_layers, pp_size, pp_rule)
    stage_full, stage_sliding, start = [], [], 0
    for count in stages:
        chunk = kinds[start : start + count]
        stage_full.append(chunk.count(FULL))
        stage_sliding.append(chunk.count(SLIDING) + chunk.count(CHUNKED))
        start += count

    state = _state_bytes(cfg, kinds, stages, tp_size, model_dtype)
    return KVGeometry(
        model_type=model_type,
        attention=attention,
        kv_kind=kv_kind,
        num_layers=num_layers,
        layer_kinds=kinds,
        kv_layers=sum(stage_full) + sum(stage_sliding),
        full_layers=sum(stage_full),
        sliding_layers=sum(stage_sliding),
        sliding_window=window,
        tp_size=tp_size,
        pp_size=pp_size,
        pp_rule=pp_rule,
        stage_layers=stages,
        stage_full_layers=tuple(stage_full),
        stage_sliding_layers=tuple(stage_sliding),
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        kv_heads_per_gpu=kv_heads_per_gpu,
        kv_heads_replicated=replicated,
        head_dim=head_dim,
        mla_latent_dim=latent,
        model_dtype=model_dtype,
        kv_dtype=str(kv_dtype).lower(),
        dtype_bytes=dtype_bytes,
        kv_bytes_per_token_per_layer_per_gpu=per_layer_gpu,
        kv_bytes_per_token_per_layer=per_layer,
        state_bytes_per_sequence_per_gpu=state,
        notes=tuple(notes),
        source=config,
    )


def _window(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isinf(value):
        return None
    return int(value) if int(value) > 0 else None


def _state_bytes(
    cfg: Any, kinds: tuple[str, ...], stages: tuple[int, ...], tp: int, model_dtype: str | None
) -> int | None:
    """Constant per-sequence state (Mamba-2 or gated-delta-net) on the busiest stage's GPU.

    Conv state: (kernel - 1) × conv channels; SSM state: heads × head_dim × state.
    Channels and heads are split across TP; ``None`` when the config lacks a field.
    """
    per_layer = None
    if MAMBA in kinds:
        heads = get_attr(cfg, "mamba_n_heads", "mamba_num_heads")
        head_dim = get_attr(cfg, "mamba_d_head", "mamba_head_dim")
        state = get_attr(cfg, "mamba_d_state", "ssm_state_size")
        groups = get_attr(cfg, "mamba_n_groups", "n_groups")
        conv = get_attr(cfg, "mamba_d_conv", "conv_kernel")
        if None in (heads, head_dim, state, groups, conv):
            return None
        inner = heads * head_dim // tp
        conv_channels = inner + 2 * max(1, groups // tp) * state
        per_layer = (conv - 1) * conv_channels + (heads // tp) * head_dim * state
        kind = MAMBA
    elif LINEAR in kinds:
        k_heads = get_attr(cfg, "linear_num_key_heads")
        v_heads = get_attr(cfg, "linear_num_value_heads")
        k_dim = get_attr(cfg, "linear_key_head_dim")
        v_dim = get_attr(cfg, "linear_value_head_dim")
        conv = get_attr(cfg, "linear_conv_kernel_dim")
        if None in (k_heads, v_heads, k_dim, v_dim, conv):
            return None
        conv_channels = (2 * k_heads * k_dim + v_heads * v_dim) // tp
        per_layer = (conv - 1) * conv_channels + (v_heads // tp) * k_dim * v_dim
        kind = LINEAR
    if per_layer is None:
        return None
    busiest, start = 0, 0
    for count in stages:
        busiest = max(busiest, kinds[start : start + count].count(kind))
        start += count
    return busiest * per_layer * kv_dtype_bytes("auto", model_dtype)
