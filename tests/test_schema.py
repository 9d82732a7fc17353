"""The JSON Schema of model_configs.yaml: itself valid, and in agreement with the quick check."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from registry.loader import _jsonable, load_yaml_document, quick_valid
from registry.model_registry import PACKAGED_CONFIG, SCHEMA_PATH, load_schema


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_packaged_registry_passes_both_validators():
    data = load_yaml_document(PACKAGED_CONFIG).data
    assert quick_valid(data, load_schema())
    assert Draft202012Validator(load_schema()).is_valid(_jsonable(data))


MUTATIONS = [
    ("version", 2),
    ("models.m.architecture.model_type", ""),
    ("models.m.supported_configs.0.cb", "yes"),
    ("models.m.supported_configs.0.warmup_shapes", [[1, 2, 3]]),
    ("models.m.device_configs.4.num_gpu_blocks_override", {"torch_sendnn<1.0.3": 1, "default": 0}),
    ("models.m.device_configs.4.num_gpu_blocks_override", {"not a requirement": 1}),
    ("models.m.device_configs.4.transfer.access_pattern", "random"),
    ("models.m.device_configs.4.backends.trtllm", {}),
    ("models.m.env_vars.BAD-NAME", 1),
    ("models.m.configurator", "module_without_class"),
    ("defaults.backends.vllm.engine_args", []),
    ("models.m.device_configs.4.chunked_prefill_config.max_num_batched_tokens", -1),
]

VALID = {
    "version": 1,
    "models": {
        "m": {
            "architecture": {"model_type": "llama"},
            "supported_configs": [{"cb": True, "tp_size": 4, "max_model_len": 8, "max_num_seqs": 1}],
            "device_configs": {4: {"num_gpu_blocks_override": {"torch_sendnn<1.0.3": 2080, "default": 8192}}},
        }
    },
}


def _set(data, dotted: str, value):
    data = json.loads(json.dumps(data))
    node = data
    *parents, last = dotted.split(".")
    for key in parents:
        key = int(key) if key.isdigit() and isinstance(node, list) else key
        node = node[key] if isinstance(node, list) else node.setdefault(key, {})
    node[last] = value
    return data


def test_valid_example_is_valid():
    assert quick_valid(VALID, load_schema())


@pytest.mark.parametrize(("path", "value"), MUTATIONS)
def test_each_mutation_is_rejected_by_both(path, value):
    bad = _set(VALID, path, value)
    assert not Draft202012Validator(load_schema()).is_valid(_jsonable(bad))
    assert not quick_valid(bad, load_schema())
