"""Parameter counts from real HF configs, checked against hand arithmetic and the model cards."""

from __future__ import annotations

import pytest

from registry.errors import ResolutionError
from registry.param_count import count_parameters
from tests.conftest import hf_config_dict


def test_llama_3_1_70b_dense_untied():
    # h=8192, 80 layers, 64 heads, 8 KV heads (head_dim 128), ffn 28672, vocab 128256, untied.
    # attention = q 8192² + k,v 2·8192·1024 + o 8192² = 150,994,944
    # mlp = 3·8192·28672 = 704,643,072; norms 2·8192 = 16,384
    # layers = 80·(150,994,944 + 704,643,072 + 16,384) = 68,452,352,000
    # embedding = head = 128256·8192 = 1,050,673,152; final norm 8192
    count = count_parameters(hf_config_dict("meta-llama/Llama-3.1-70B"))
    assert count.layers[0].attention == 150_994_944
    assert count.layers[0].mlp == 704_643_072
    assert count.total == 68_452_352_000 + 2 * 1_050_673_152 + 8192 == 70_553_706_496
    assert not count.is_moe and count.active == count.total


def test_deepseek_v3_moe_mla_shared_experts_and_mtp():
    # MLA: q_a 7168·1536 + norm 1536 + q_b 1536·128·192 + kv_a 7168·576 + norm 512 + kv_b 512·128·256
    #      + o 128·128·7168 = 187,107,328
    # 3 dense layers: mlp 3·7168·18432 = 396,361,728
    # 58 MoE layers: routed 256·3·7168·2048 = 11,274,289,152; shared 3·7168·2048 = 44,040,192;
    #      router 256·7168 + 256 (noaux_tc bias) = 1,835,264
    # total = 61·187,107,328 + 3·396,361,728 + 58·(11,274,289,152 + 44,040,192 + 1,835,264)
    #       + 61·14,336 + 2·129280·7168 + 7168 = 671,026,419,200  (the model card's "671B")
    count = count_parameters(hf_config_dict("deepseek-ai/DeepSeek-V3"))
    assert count.layers[0].attention == 187_107_328
    assert count.layers[0].experts == 0 and count.layers[3].experts == 11_274_289_152
    assert count.layers[3].mlp == 44_040_192 + 1_835_264
    assert count.total == 671_026_419_200
    # MTP module: one more MoE layer + eh_proj 2·7168² + 3 norms; embedding/head shared.
    assert len(count.mtp_layers) == 1
    assert count.mtp_total == 187_107_328 + 44_040_192 + 1_835_264 + 2 * 7168**2 + 11_274_289_152 + 5 * 7168


def test_mixtral_total_and_active():
    # 32 layers; attention 4096² ·2 + 2·4096·1024 = 41,943,040; experts 8·3·4096·14336 = 1,409,286,144;
    # router 8·4096 = 32,768; norms 8192; embeddings 2·32000·4096; final 4096
    count = count_parameters(hf_config_dict("mistralai/Mixtral-8x7B-v0.1"))
    assert count.total == 32 * (41_943_040 + 1_409_286_144 + 32_768 + 8192) + 2 * 32000 * 4096 + 4096
    assert round(count.total / 1e9, 1) == 46.7
    # active: routed experts scaled by top-2 of 8
    assert count.active == count.total - 32 * 1_409_286_144 + 32 * 1_409_286_144 * 2 // 8


def test_gpt2_names_and_tied_embeddings_by_default():
    # gpt2 config has no tie_word_embeddings key: the class default (tied) applies; 124M parameters.
    count = count_parameters(hf_config_dict("openai-community/gpt2"))
    assert count.lm_head == 0
    assert round(count.total / 1e6) == 124


@pytest.mark.parametrize(
    ("model", "billions"),
    [("Qwen/Qwen3-235B-A22B", 235.1), ("openai/gpt-oss-120b", 116.8), ("meta-llama/Llama-3.1-405B", 405.9)],
)
def test_model_card_totals(model, billions):
    assert round(count_parameters(hf_config_dict(model)).total / 1e9, 1) == billions


def test_hybrid_models_are_refused_with_a_sentence():
    with pytest.raises(ResolutionError, match="hybrid model_type 'nemotron_h'"):
        count_parameters(hf_config_dict("nvidia/Nemotron-H-56B-Base-8K"))


def test_missing_fields_are_named():
    with pytest.raises(ResolutionError, match="no hidden_size, vocab_size"):
        count_parameters({"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 4})
