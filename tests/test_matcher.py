"""ModelMatcher and the pattern index: equality rules, specificity, ties, explanations."""

from __future__ import annotations

import pytest
from conftest import hf_config_dict, hf_config_path

from registry.errors import MatchError
from registry.hf_config import load_hf_config
from registry.model_config import ArchitecturePattern
from registry.model_matcher import ModelMatcher, PatternIndex, values_equal

LLAMA_8B_INSTRUCT = "meta-llama/Llama-3.1-8B-Instruct"


def pattern(model_type: str, **attributes) -> ArchitecturePattern:
    return ArchitecturePattern(model_type, attributes)


def test_matches_a_real_pretrained_config_and_its_dict():
    data = hf_config_dict(LLAMA_8B_INSTRUCT)
    config = load_hf_config(data)
    assert type(config).__name__ == "LlamaConfig"
    good = pattern("llama", num_hidden_layers=32, eos_token_id=[128001, 128008, 128009])
    for candidate in (config, data):
        assert ModelMatcher.matches(candidate, good)
        assert not ModelMatcher.matches(candidate, pattern("llama", num_hidden_layers=80))
        assert not ModelMatcher.matches(candidate, pattern("mistral"))
        # An attribute absent from the config is a non-match.
        assert not ModelMatcher.matches(candidate, pattern("llama", no_such_attribute=1))


def test_pretrained_config_class_defaults_take_part():
    """head_dim is not in the Llama config.json; transformers derives it (4096 / 32 = 128)."""
    data = hf_config_dict(LLAMA_8B_INSTRUCT)
    assert "head_dim" not in data
    with_default = pattern("llama", head_dim=128)
    assert ModelMatcher.matches(load_hf_config(data), with_default)
    assert not ModelMatcher.matches(data, with_default)


def test_nested_patterns_match_dicts_by_key_and_sub_configs_by_attribute():
    vl_dict = hf_config_dict("Qwen/Qwen3-VL-8B-Instruct")
    vl_config = load_hf_config(hf_config_path("Qwen/Qwen3-VL-8B-Instruct"))
    nested = pattern("qwen3_vl", text_config={"num_hidden_layers": 36, "hidden_size": 4096})
    assert ModelMatcher.matches(vl_dict, nested)
    assert ModelMatcher.matches(vl_config, nested)
    assert not ModelMatcher.matches(vl_config, pattern("qwen3_vl", text_config={"num_hidden_layers": 28}))
    fp8 = hf_config_dict("ibm-granite/granite-3.3-8b-instruct-FP8")
    assert ModelMatcher.matches(
        fp8, pattern("granite", quantization_config={"quant_method": "compressed-tensors"})
    )
    base = hf_config_dict("ibm-granite/granite-3.3-8b-instruct")
    assert not ModelMatcher.matches(base, pattern("granite", quantization_config={"quant_method": "fp8"}))


def test_any_object_with_attributes():
    class Obj:
        model_type = "gpt2"
        n_layer = 12

    assert ModelMatcher.matches(Obj(), pattern("gpt2", n_layer=12))
    assert not ModelMatcher.matches(Obj(), pattern("gpt2", n_layer=24))


@pytest.mark.parametrize(
    ("expected", "actual", "equal"),
    [
        ([1, 2], (1, 2), True),
        ([1, 2], [2, 1], False),
        (1, True, False),
        (True, True, True),
        (1.0, 1, True),
        (1e-5, 1e-05, True),
        (float("inf"), float("inf"), True),
        ({"a": 1}, "a", False),
        ("4.46.3", "4.46.3", True),
        (128001, [128001, 128008, 128009], False),
    ],
)
def test_values_equal(expected, actual, equal):
    assert values_equal(expected, actual) is equal


def test_most_specific_pattern_wins():
    index = PatternIndex(
        {
            "base": pattern("granite", num_hidden_layers=40),
            "fp8": pattern("granite", num_hidden_layers=40, quantization_config={"quant_method": "fp8"}),
        }
    )
    assert index.find({"model_type": "granite", "num_hidden_layers": 40}) == "base"
    assert (
        index.find(
            {"model_type": "granite", "num_hidden_layers": 40, "quantization_config": {"quant_method": "fp8"}}
        )
        == "fp8"
    )
    assert index.find({"model_type": "llama"}) is None


def test_equal_specificity_is_an_error_naming_both_unless_the_model_id_decides():
    index = PatternIndex({"org/a": pattern("llama", vocab_size=1), "org/b": pattern("llama", hidden_size=2)})
    config = {"model_type": "llama", "vocab_size": 1, "hidden_size": 2}
    with pytest.raises(MatchError) as info:
        index.find(config)
    assert "'org/a', 'org/b'" in str(info.value)
    assert "2 fields each" in str(info.value)
    assert index.find(config, ["org/b"]) == "org/b"
    assert index.find({**config, "_name_or_path": "org/a"}, [None, "org/a"]) == "org/a"


def test_explain_lists_every_leaf_attribute():
    checks = ModelMatcher.compare(
        hf_config_dict("deepseek-ai/DeepSeek-V3"),
        pattern("deepseek_v3", transformers_version="4.46.3", quantization_config={"quant_method": "fp8"}),
    )
    by_key = {c.key_path: c for c in checks}
    assert by_key["transformers_version"].ok is False
    assert by_key["transformers_version"].actual == "4.33.1"
    assert by_key["quantization_config.quant_method"].ok is True
    assert by_key["model_type"].ok is True


def test_index_at_10000_patterns_finds_the_one_entry():
    """Large same-type buckets use a secondary lookup; it must not change the answer."""
    patterns = {
        f"org/m{i}": pattern(f"type{i % 20}", num_hidden_layers=i, hidden_size=4096 + i % 7)
        for i in range(10_000)
    }
    patterns["org/wild"] = pattern("type7", hidden_size=1)  # lacks the indexed attribute: always a candidate
    index = PatternIndex(patterns)
    assert (
        index.find({"model_type": "type7", "num_hidden_layers": 9987, "hidden_size": 4096 + 9987 % 7})
        == "org/m9987"
    )
    assert index.find({"model_type": "type7", "num_hidden_layers": 5, "hidden_size": 1}) == "org/wild"
    assert index.find({"model_type": "type7", "num_hidden_layers": 9987, "hidden_size": 0}) is None
