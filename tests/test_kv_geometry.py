"""KV geometry of every packaged HF config, with the arithmetic done by hand.

Per-layer bytes at TP 1 = KV heads × 2 (K and V) × head_dim × dtype bytes; MLA
holds one latent (kv_lora_rank + qk_rope_head_dim) instead. ``auto`` KV dtype
is 2 bytes for every fixture (bf16 checkpoints; float32 ones are served 16-bit;
no dtype field means 16-bit too).
"""

from __future__ import annotations

import json

import pytest
from conftest import all_fixture_ids, hf_config_dict, hf_config_path

from registry.errors import UsageError
from registry.kv_geometry import KV_DTYPES, kv_geometry, split_layers

# model, attention, layers, full, sliding, window, KV heads, head_dim, bytes/token/layer, bytes/token
GEOMETRY = [
    # xlm-roberta encoder: served without a KV cache.
    ("BAAI/bge-reranker-large", "encoder", 24, 0, 0, None, 16, 0, 0, 0),
    ("BAAI/bge-reranker-v2-m3", "encoder", 24, 0, 0, None, 16, 0, 0, 0),
    # 94 layers, 4 KV heads × 2 × 128 × 2 B = 2048 B/layer; 94 × 2048 = 192512.
    ("Qwen/Qwen3-235B-A22B", "gqa", 94, 94, 0, None, 4, 128, 2048, 192512),
    # 36 layers, 8 × 2 × 128 × 2 = 4096; 36 × 4096 = 147456.
    ("Qwen/Qwen3-8B", "gqa", 36, 36, 0, None, 8, 128, 4096, 147456),
    # Multimodal: the same numbers from text_config.
    ("Qwen/Qwen3-VL-8B-Instruct", "gqa", 36, 36, 0, None, 8, 128, 4096, 147456),
    # MLA: 512 + 64 = 576 elements × 2 B = 1152 B/layer; 61 × 1152 = 70272 (MTP layer excluded).
    ("deepseek-ai/DeepSeek-R1", "mla", 61, 61, 0, None, 1, 576, 1152, 70272),
    ("deepseek-ai/DeepSeek-V3", "mla", 61, 61, 0, None, 1, 576, 1152, 70272),
    # 42 layers alternate sliding (4096) / full: 21 + 21; 8 × 2 × 256 × 2 = 8192; 21 full × 8192 = 172032.
    ("google/gemma-2-9b", "gqa", 42, 21, 21, 4096, 8, 256, 8192, 172032),
    # 4 layers, head_dim 4096 / 32 = 128; 8 × 2 × 128 × 2 = 4096; 4 × 4096 = 16384.
    ("ibm-ai-platform/micro-g3.3-8b-instruct-1b", "gqa", 4, 4, 0, None, 8, 128, 4096, 16384),
    # 40 layers × 4096 = 163840 (the FP8 checkpoint still has a bf16 KV cache under "auto").
    ("ibm-granite/granite-3.3-8b-instruct", "gqa", 40, 40, 0, None, 8, 128, 4096, 163840),
    ("ibm-granite/granite-3.3-8b-instruct-FP8", "gqa", 40, 40, 0, None, 8, 128, 4096, 163840),
    ("ibm-granite/granite-4-8b-dense", "gqa", 40, 40, 0, None, 8, 128, 4096, 163840),
    # granitemoehybrid whose layer_types are all "attention": no Mamba layer, plain GQA.
    ("ibm-granite/granite-4-8b-dense-hybrid", "gqa", 40, 40, 0, None, 8, 128, 4096, 163840),
    ("ibm-granite/granite-embedding-125m-english", "encoder", 12, 0, 0, None, 12, 0, 0, 0),
    ("ibm-granite/granite-embedding-278m-multilingual", "encoder", 12, 0, 0, None, 12, 0, 0, 0),
    ("intfloat/multilingual-e5-large", "encoder", 24, 0, 0, None, 16, 0, 0, 0),
    # 126 layers, head_dim 16384 / 128 = 128; 126 × 4096 = 516096.
    ("meta-llama/Llama-3.1-405B", "gqa", 126, 126, 0, None, 8, 128, 4096, 516096),
    ("meta-llama/Llama-3.1-405B-Instruct-FP8", "gqa", 126, 126, 0, None, 8, 128, 4096, 516096),
    # 80 × 4096 = 327680.
    ("meta-llama/Llama-3.1-70B", "gqa", 80, 80, 0, None, 8, 128, 4096, 327680),
    # 32 × 4096 = 131072.
    ("meta-llama/Llama-3.1-8B", "gqa", 32, 32, 0, None, 8, 128, 4096, 131072),
    ("meta-llama/Llama-3.1-8B-Instruct", "gqa", 32, 32, 0, None, 8, 128, 4096, 131072),
    # sliding_window: null -> every layer full; 32 × 4096 = 131072.
    ("mistralai/Mixtral-8x7B-v0.1", "gqa", 32, 32, 0, None, 8, 128, 4096, 131072),
    # Pattern of 118: 10 '*' attention, 54 'M' Mamba, 54 '-' MLP; attention_head_dim 128 -> 4096; 10 × 4096.
    ("nvidia/Nemotron-H-56B-Base-8K", "hybrid", 118, 10, 0, None, 8, 128, 4096, 40960),
    # GPT-2 names: n_layer 12, n_head 12 (MHA), n_embd 768 / 12 = 64; 12 × 2 × 64 × 2 = 3072; 12 × 3072.
    ("openai-community/gpt2", "mha", 12, 12, 0, None, 12, 64, 3072, 36864),
    # layer_types: 18 sliding (128) + 18 full; 8 × 2 × 64 × 2 = 2048; 18 × 2048 = 36864.
    ("openai/gpt-oss-120b", "gqa", 36, 18, 18, 128, 8, 64, 2048, 36864),
    # 12 + 12; 12 × 2048 = 24576.
    ("openai/gpt-oss-20b", "gqa", 24, 12, 12, 128, 8, 64, 2048, 24576),
    ("sentence-transformers/all-roberta-large-v1", "encoder", 24, 0, 0, None, 16, 0, 0, 0),
]


def test_every_fixture_has_a_geometry_row():
    assert sorted(row[0] for row in GEOMETRY) == all_fixture_ids()


@pytest.mark.parametrize(
    (
        "model",
        "attention",
        "layers",
        "full",
        "sliding",
        "window",
        "kv_heads",
        "head_dim",
        "per_layer",
        "per_token",
    ),
    GEOMETRY,
)
def test_geometry_of_fixture(
    model, attention, layers, full, sliding, window, kv_heads, head_dim, per_layer, per_token
):
    geometry = kv_geometry(hf_config_dict(model))
    assert geometry.attention == attention
    assert geometry.num_layers == layers
    assert (geometry.full_layers, geometry.sliding_layers, geometry.sliding_window) == (full, sliding, window)
    assert geometry.kv_layers == full + sliding
    assert geometry.num_kv_heads == kv_heads
    assert geometry.head_dim == head_dim
    assert geometry.dtype_bytes == 2
    assert geometry.kv_bytes_per_token_per_layer_per_gpu == per_layer
    assert geometry.kv_bytes_per_token_per_gpu == per_token
    assert geometry.stage_layers == (layers,)
    assert json.loads(json.dumps(geometry.to_dict()))["kv_bytes_per_token_per_gpu"] == per_token


def test_sliding_layers_hold_at_most_their_window():
    geometry = kv_geometry(hf_config_dict("google/gemma-2-9b"))
    # 8192 B × (21 full × 10000 + 21 sliding × min(10000, 4096)) = 8192 × 296016.
    assert geometry.kv_bytes_per_gpu(10_000) == 8192 * 296_016 == 2_424_963_072
    # Below the window both kinds hold every token: 8192 × 42 × 100.
    assert geometry.kv_bytes_per_gpu(100) == 8192 * 42 * 100
    assert geometry.kv_bytes_model(10_000) == 2_424_963_072


def test_gpt_oss_alternation_comes_from_layer_types():
    geometry = kv_geometry(hf_config_dict("openai/gpt-oss-20b"))
    assert geometry.layer_kinds[:4] == ("sliding", "full", "sliding", "full")
    # 2048 × (12 × 1000 + 12 × 128) = 2048 × 13536.
    assert geometry.kv_bytes_model(1000) == 2048 * 13_536


def test_gemma2_implicit_pattern_matches_transformers():
    """Transformers fills Gemma 2's layer_types itself; the raw config.json has none."""
    from transformers import Gemma2Config

    data = hf_config_dict("google/gemma-2-9b")
    assert "layer_types" not in data
    expected = tuple(
        "sliding" if t == "sliding_attention" else "full" for t in Gemma2Config(**data).layer_types
    )
    assert kv_geometry(data).layer_kinds == expected


def test_pretrained_config_objects_give_the_same_geometry():
    from transformers import AutoConfig

    for model in (
        "meta-llama/Llama-3.1-70B",
        "google/gemma-2-9b",
        "deepseek-ai/DeepSeek-R1",
        "Qwen/Qwen3-VL-8B-Instruct",
    ):
        config = AutoConfig.from_pretrained(hf_config_path(model).parent)
        assert kv_geometry(config).to_dict() == kv_geometry(hf_config_dict(model)).to_dict(), model


def test_nemotron_h_reports_mamba_state_separately():
    geometry = kv_geometry(hf_config_dict("nvidia/Nemotron-H-56B-Base-8K"))  # config.json holds Infinity
    assert geometry.layer_kinds.count("mamba") == 54
    # Per Mamba-2 layer: conv (4 - 1) × (256 heads × 64 + 2 × 8 groups × 256 state) = 3 × 20480 = 61440,
    # SSM 256 × 64 × 256 = 4194304; (61440 + 4194304) × 2 B = 8511488; × 54 layers = 459620352.
    assert geometry.state_bytes_per_sequence_per_gpu == 459_620_352
    # TP 8: conv 3 × (16384/8 + 2 × 1 × 256) = 7680, SSM 32 × 64 × 256 = 524288; × 2 B × 54.
    assert kv_geometry(
        hf_config_dict("nvidia/Nemotron-H-56B-Base-8K"), tp_size=8
    ).state_bytes_per_sequence_per_gpu == ((7680 + 524_288) * 2 * 54)


def test_mla_is_not_divided_by_tp_and_counts_once():
    r1 = hf_config_dict("deepseek-ai/DeepSeek-R1")
    geometry = kv_geometry(r1, tp_size=8, kv_dtype="fp8")
    # Every TP rank holds the whole 576-byte fp8 latent.
    assert geometry.kv_bytes_per_token_per_layer_per_gpu == 576
    # The transfer moves it once: 61 × 576 × 10 tokens.
    assert geometry.kv_bytes_model(10) == 61 * 576 * 10
    assert "MTP" in " ".join(geometry.notes)


def test_kv_heads_replicate_when_tp_exceeds_them():
    llama = hf_config_dict("meta-llama/Llama-3.1-8B")
    geometry = kv_geometry(llama, tp_size=16)
    # max(1, 8 // 16) = 1 head per GPU: 1 × 2 × 128 × 2 = 512 B.
    assert geometry.kv_heads_per_gpu == 1
    assert geometry.kv_heads_replicated
    assert geometry.kv_bytes_per_token_per_layer_per_gpu == 512
    # The model's KV is still 8 heads' worth, counted once: 32 × 4096.
    assert geometry.kv_bytes_model(1) == 131_072
    # TP 4: 8 // 4 = 2 heads: 2 × 2 × 128 × 2 = 1024.
    assert kv_geometry(llama, tp_size=4).kv_bytes_per_token_per_layer_per_gpu == 1024


def test_pipeline_split_rules():
    # vLLM: 61 = 16 × 3 + 13; the 13 extra go to stages 14, 13, ..., 2 (never the last).
    assert split_layers(61, 16, "vllm") == (3, 3) + (4,) * 13 + (3,)
    # SGLang: the last 13 stages get the extra layer.
    assert split_layers(61, 16, "sglang") == (3,) * 3 + (4,) * 13
    # 61 = 8 × 7 + 5: stages 6, 5, 4, 3, 2 get the extra layer.
    assert split_layers(61, 8) == (7, 7, 8, 8, 8, 8, 8, 7)
    assert split_layers(80, 4) == (20, 20, 20, 20)
    with pytest.raises(UsageError, match="--pp 62 is invalid for a model with 61 layers"):
        split_layers(61, 62)


def test_block_stage_is_the_busiest():
    geometry = kv_geometry(hf_config_dict("deepseek-ai/DeepSeek-R1"), pp_size=16, kv_dtype="fp8")
    # ceil(61 / 16) = 4 layers × 576 B on the busiest stage.
    assert geometry.busiest_stage_kv_layers == 4
    assert geometry.kv_bytes_per_token_per_gpu == 4 * 576


def test_hybrid_stages_count_only_attention_layers():
    geometry = kv_geometry(hf_config_dict("nvidia/Nemotron-H-56B-Base-8K"), pp_size=4)
    # 118 = 4 × 29 + 2 -> (29, 30, 30, 29); '*' at 7, 18, 29, 40, 51, 62, 73, 84, 95, 106:
    # stage 0 [0, 29): 7, 18 -> 2; stage 1 [29, 59): 29, 40, 51 -> 3; stage 2 [59, 89): 62, 73, 84 -> 3;
    # stage 3 [89, 118): 95, 106 -> 2.
    assert geometry.stage_layers == (29, 30, 30, 29)
    assert geometry.stage_full_layers == (2, 3, 3, 2)
    assert geometry.kv_bytes_per_token_per_gpu == 3 * 4096


@pytest.mark.parametrize(
    ("kv_dtype", "expected"),
    [
        ("fp8", 1),
        ("fp8_e4m3", 1),
        ("fp8_e5m2", 1),
        ("int8", 1),
        ("fp16", 2),
        ("bf16", 2),
        ("bfloat16", 2),
        ("fp32", 4),
    ],
)
def test_kv_dtypes(kv_dtype, expected):
    geometry = kv_geometry(hf_config_dict("meta-llama/Llama-3.1-8B"), kv_dtype=kv_dtype)
    assert geometry.kv_bytes_per_token_per_layer_per_gpu == 8 * 2 * 128 * expected


def test_auto_dtype_follows_model_and_float32_is_served_in_16_bit():
    e5 = dict(hf_config_dict("google/gemma-2-9b"))
    assert e5["torch_dtype"] == "float32"
    assert kv_geometry(e5).dtype_bytes == 2


def test_unknown_kv_dtype_lists_the_valid_ones():
    with pytest.raises(UsageError) as error:
        kv_geometry(hf_config_dict("meta-llama/Llama-3.1-8B"), kv_dtype="fp4")
    assert "unknown KV-cache dtype 'fp4'" in str(error.value)
    assert all(name in str(error.value) for name in KV_DTYPES)


def test_name_fallbacks():
    # Falcon-style multi_query: one KV head; head_dim 4544 / 71 = 64; 1 × 2 × 64 × 2 = 256 B.
    falcon = {"model_type": "falcon", "num_hidden_layers": 32, "num_attention_heads": 71, "hidden_size": 4544}
    assert kv_geometry({**falcon, "multi_query": True}).kv_bytes_per_token_per_layer_per_gpu == 256
    assert kv_geometry({**falcon, "multi_query": True}).attention == "mqa"
    # A null head_dim counts as absent; num_key_value_heads falls back to the attention heads.
    llama = {"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 8, "hidden_size": 512}
    geometry = kv_geometry({**llama, "head_dim": None, "num_key_value_heads": None})
    assert (geometry.attention, geometry.head_dim, geometry.num_kv_heads) == ("mha", 64, 8)
    # An explicit head_dim wins over hidden / heads.
    assert kv_geometry({**llama, "head_dim": 128}).head_dim == 128


def test_mla_ignores_the_config_head_dim():
    r1 = {**hf_config_dict("deepseek-ai/DeepSeek-R1"), "head_dim": 192}
    assert kv_geometry(r1).head_dim == 576


def test_mistral_and_qwen2_sliding_rules():
    base = {"model_type": "mistral", "num_hidden_layers": 4, "num_attention_heads": 8, "hidden_size": 512}
    assert kv_geometry({**base, "sliding_window": 4096}).sliding_layers == 4
    qwen = {**base, "model_type": "qwen2", "sliding_window": 1024, "max_window_layers": 2}
    assert kv_geometry({**qwen, "use_sliding_window": False}).sliding_layers == 0
    assert kv_geometry({**qwen, "use_sliding_window": True}).layer_kinds == (
        "full",
        "full",
        "sliding",
        "sliding",
    )


def test_llama4_chunked_attention_default():
    cfg = {
        "model_type": "llama4",
        "text_config": {
            "model_type": "llama4_text",
            "num_hidden_layers": 8,
            "num_attention_heads": 40,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "attention_chunk_size": 8192,
        },
    }
    geometry = kv_geometry(cfg)
    # Every 4th layer is global (no RoPE), the rest chunked at 8192 tokens.
    assert geometry.layer_kinds == ("chunked",) * 3 + ("full",) + ("chunked",) * 3 + ("full",)
    assert geometry.sliding_window == 8192


def test_bad_configs_are_usage_errors():
    with pytest.raises(UsageError, match="num_hidden_layers must be a positive integer"):
        kv_geometry({"model_type": "llama", "num_attention_heads": 8, "hidden_size": 64})
    with pytest.raises(UsageError, match="--tp must be a positive integer"):
        kv_geometry(hf_config_dict("meta-llama/Llama-3.1-8B"), tp_size=0)
