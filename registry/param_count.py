"""Parameter count of a decoder LLM from its HF config, split the way a deployment shards it.

A sweep needs weights per GPU for thousands of layouts: attention and dense MLPs
split by tensor parallelism, routed experts by expert/MoE-TP parallelism, layers by
pipeline stage. So the count is kept per layer and per part, not as one total. It
reads the raw ``config.json`` (or any attribute object) and never imports
transformers: counting must not cost a second of startup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry.config_attrs import get_attr, text_config
from registry.errors import ResolutionError

# Models whose FFN is two matrices (up, down) rather than the gated three (gate, up, down).
_UNGATED = {
    "gpt2",
    "gpt_neox",
    "gptj",
    "opt",
    "bert",
    "roberta",
    "xlm-roberta",
    "falcon",
    "bloom",
    "starcoder2",
}
# transformers' class default for tie_word_embeddings when config.json leaves it out.
_TIED_BY_DEFAULT = {
    "gpt2",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3_text",
    "bert",
    "roberta",
    "xlm-roberta",
    "opt",
}
_HYBRID_HINTS = (
    "hybrid_override_pattern",
    "mamba_d_ssm",
    "mamba_expand",
    "layers_block_type",
    "linear_num_key_heads",
)


@dataclass(frozen=True)
class LayerParams:
    """One decoder layer's parameters by how they are sharded.

    ``attention`` and ``mlp`` (dense FFN, or shared experts plus router) split by
    TP; ``experts`` (routed experts) split by MoE-TP × EP; ``norms`` stay 16-bit and
    are replicated.
    """

    attention: int
    mlp: int
    experts: int = 0
    norms: int = 0

    @property
    def total(self) -> int:
        return self.attention + self.mlp + self.experts + self.norms


@dataclass(frozen=True)
class ParamCount:
    """The model's parameters: embeddings, per-layer parts, and MTP (next-n) modules."""

    model_type: str
    embedding: int
    lm_head: int
    final_norm: int
    layers: tuple[LayerParams, ...]
    mtp_layers: tuple[LayerParams, ...] = ()
    num_experts: int = 0
    experts_per_token: int = 0

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def total(self) -> int:
        """Parameters of the served main model (MTP modules excluded, as model cards count)."""
        return self.embedding + self.lm_head + self.final_norm + sum(layer.total for layer in self.layers)

    @property
    def mtp_total(self) -> int:
        return sum(layer.total for layer in self.mtp_layers)

    @property
    def active(self) -> int:
        """Parameters used per token: routed experts scaled by top-k / experts."""
        if not self.is_moe:
            return self.total
        routed = sum(layer.experts for layer in self.layers)
        return self.total - routed + routed * self.experts_per_token // self.num_experts

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "total": self.total,
            "active": self.active,
            "embedding": self.embedding,
            "lm_head": self.lm_head,
            "attention": sum(layer.attention for layer in self.layers),
            "mlp": sum(layer.mlp for layer in self.layers),
            "experts": sum(layer.experts for layer in self.layers),
            "mtp": self.mtp_total,
            "num_layers": len(self.layers),
            "num_experts": self.num_experts,
        }


def count_parameters(config: Any) -> ParamCount:
    """Count parameters from a HF config dict (or attribute object).

    Covers dense decoders (Llama, Qwen, Mistral, Granite, Gemma, GPT-2 names), MoE
    (Mixtral, Qwen-MoE, gpt-oss, DeepSeek with shared experts and dense leading
    layers), MLA attention and tied embeddings. Hybrid Mamba/linear-attention models
    are refused with a clear error rather than miscounted.
    """
    cfg = text_config(config)
    model_type = str(get_attr(cfg, "model_type", default=get_attr(config, "model_type", default="unknown")))
    if any(get_attr(cfg, hint) is not None for hint in _HYBRID_HINTS):
        raise ResolutionError(
            f"parameter count for hybrid model_type '{model_type}' (Mamba / linear-attention layers) "
            "is not supported; sweep a transformer-only model"
        )
    hidden = get_attr(cfg, "hidden_size", "n_embd", "d_model")
    layers = get_attr(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = get_attr(cfg, "num_attention_heads", "n_head")
    vocab = get_attr(cfg, "vocab_size")
    missing = [
        name
        for name, value in (
            ("hidden_size", hidden),
            ("num_hidden_layers", layers),
            ("num_attention_heads", heads),
            ("vocab_size", vocab),
        )
        if value is None
    ]
    if missing:
        raise ResolutionError(
            f"cannot count parameters of model_type '{model_type}': config has no {', '.join(missing)}"
        )
    hidden, layers, heads, vocab = int(hidden), int(layers), int(heads), int(vocab)

    attention = _attention_params(cfg, model_type, hidden, heads)
    num_experts = int(get_attr(cfg, "n_routed_experts", "num_local_experts", "num_experts", default=0) or 0)
    top_k = int(get_attr(cfg, "num_experts_per_tok", "experts_per_token", "moe_topk", default=0) or 0)
    norms = 2 * hidden
    dense_mlp = _ffn(
        cfg, model_type, hidden, get_attr(cfg, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)
    )

    per_layer = []
    for index in range(layers):
        if num_experts and _is_moe_layer(cfg, index):
            per_layer.append(LayerParams(attention, *_moe_parts(cfg, model_type, hidden, num_experts), norms))
        else:
            per_layer.append(LayerParams(attention, dense_mlp, 0, norms))

    embedding = vocab * hidden
    tied = get_attr(cfg, "tie_word_embeddings", default=get_attr(config, "tie_word_embeddings"))
    if tied is None:
        tied = model_type in _TIED_BY_DEFAULT
    lm_head = 0 if tied else vocab * hidden

    mtp = []
    for _ in range(int(get_attr(cfg, "num_nextn_predict_layers", default=0) or 0)):
        # A DeepSeek MTP module: one more decoder layer (MoE like the last main layer), the
        # 2h→h projection joining the previous hidden state and the token embedding, and its
        # norms; it shares the main model's embedding and output head.
        last = per_layer[-1]
        mtp.append(
            LayerParams(last.attention, last.mlp + 2 * hidden * hidden, last.experts, last.norms + 3 * hidden)
        )

    return ParamCount(
        model_type=model_type,
        embedding=embedding,
        lm_head=lm_head,
        final_norm=hidden,
        layers=tuple(per_layer),
        mtp_layers=tuple(mtp),
        num_experts=num_experts,
        experts_per_token=top_k,
    )


def _attention_params(cfg: Any, model_type: str, hidden: int, heads: int) -> int:
    kv_lora = get_attr(cfg, "kv_lora_rank")
    if kv_lora:
        # MLA: low-rank query (optional) and a compressed KV latent expanded per head.
        nope = int(get_attr(cfg, "qk_nope_head_dim"))
        rope = int(get_attr(cfg, "qk_rope_head_dim"))
        v_dim = int(get_attr(cfg, "v_head_dim", default=nope))
        q_lora = get_attr(cfg, "q_lora_rank")
        q_head = heads * (nope + rope)
        query = hidden * q_lora + q_lora + q_lora * q_head if q_lora else hidden * q_head
        kv = hidden * (kv_lora + rope) + kv_lora + kv_lora * heads * (nope + v_dim)
        return query + kv + heads * v_dim * hidden
    head_dim = get_attr(cfg, "head_dim") or hidden // heads
    kv_heads = 1 if get_attr(cfg, "multi_query") else int(get_attr(cfg, "num_key_value_heads", default=heads))
    q_dim, kv_dim = heads * head_dim, kv_heads * head_dim
    params = hidden * q_dim + 2 * hidden * kv_dim + q_dim * hidden
    if get_attr(cfg, "attention_bias") or model_type in ("qwen2", "qwen2_moe", "gpt2"):
        params += (
            q_dim + 2 * kv_dim + (hidden if get_attr(cfg, "attention_bias") or model_type == "gpt2" else 0)
        )
    if model_type in ("qwen3", "qwen3_moe"):
        params += 2 * head_dim  # q_norm and k_norm
    if model_type == "gpt_oss":
        params += heads  # attention sinks
    return params


def _ffn(cfg: Any, model_type: str, hidden: int, inner: int) -> int:
    matrices = 2 if model_type in _UNGATED else 3
    return matrices * hidden * int(inner)


def _is_moe_layer(cfg: Any, index: int) -> bool:
    if index < int(get_attr(cfg, "first_k_dense_replace", default=0) or 0):
        return False
    if index % int(get_attr(cfg, "moe_layer_freq", default=1) or 1):
        return False
    if index in (get_attr(cfg, "mlp_only_layers", default=()) or ()):
        return False
    step = int(get_attr(cfg, "decoder_sparse_step", default=1) or 1)
    return (index + 1) % step == 0


def _moe_parts(cfg: Any, model_type: str, hidden: int, num_experts: int) -> tuple[int, int]:
    """(router + shared experts, routed experts) of one MoE layer."""
    inner = int(get_attr(cfg, "moe_intermediate_size", "intermediate_size"))
    expert = 3 * hidden * inner
    if model_type == "gpt_oss":
        expert += 3 * inner  # gate_up and down biases (gate_up is 2·inner wide)
    router = hidden * num_experts
    if get_attr(cfg, "topk_method") == "noaux_tc" or model_type == "gpt_oss":
        router += num_experts  # score-correction / router bias
    shared = int(get_attr(cfg, "n_shared_experts", default=0) or 0) * expert
    shared_inner = get_attr(cfg, "shared_expert_intermediate_size")
    if shared_inner:
        shared += 3 * hidden * int(shared_inner) + hidden  # Qwen2-MoE shared expert and its gate
    return router + shared, num_experts * expert
