"""The registry dataclasses and their factories (registry.model_config)."""

from __future__ import annotations

import json

from registry.model_config import (
    ArchitecturePattern,
    DeviceConfig,
    ModelConfig,
    RuntimeConfig,
    TransferSpec,
    deep_merge,
)


def test_field_count_counts_nested_keys():
    plain = ArchitecturePattern("granite", {"num_hidden_layers": 40})
    nested = ArchitecturePattern(
        "granite", {"num_hidden_layers": 40, "quantization_config": {"quant_method": "fp8"}}
    )
    assert plain.field_count == 2  # model_type + num_hidden_layers
    assert nested.field_count == 4  # ... + quantization_config + quant_method


def test_deep_merge_child_wins_lists_replace_and_inputs_untouched():
    base = {"env_vars": {"A": 1, "B": 2}, "supported_configs": [1, 2], "x": {"y": {"z": 1}}}
    child = {"env_vars": {"B": 3}, "supported_configs": [3], "x": {"y": {"w": 2}}}
    merged = deep_merge(base, child)
    assert merged == {"env_vars": {"A": 1, "B": 3}, "supported_configs": [3], "x": {"y": {"z": 1, "w": 2}}}
    assert base["env_vars"] == {"A": 1, "B": 2}


ENTRY = {
    "architecture": {"model_type": "llama", "num_hidden_layers": 32},
    "supported_configs": [
        {"cb": True, "tp_size": 4, "max_model_len": 8192, "max_num_seqs": 8},
        {"cb": False, "tp_size": 1, "warmup_shapes": [[64, 20, 4]]},
    ],
    "device_configs": {
        "4": {
            "env_vars": {"X": 1},
            "num_gpu_blocks_override": 8192,
            "backends": {"vllm": {"engine_args": {"a": 1}}},
            "transfer": {"isl": 8, "access_pattern": "layer", "nixlbench": {"backend": "UCX"}},
        }
    },
    "env_vars": {"M": "m"},
    "configurator": "pkg.mod:Cls",
}


def test_from_entry_builds_every_part():
    model = ModelConfig.from_entry("org/m", ENTRY)
    assert model.architecture == ArchitecturePattern("llama", {"num_hidden_layers": 32})
    assert model.supported_configs == (
        RuntimeConfig(True, 4, 8192, 8),
        RuntimeConfig(False, 1, warmup_shapes=((64, 20, 4),)),
    )
    device = model.device_configs[4]  # keyed by int TP size even when written as a string
    assert isinstance(device, DeviceConfig)
    assert device.num_gpu_blocks_override == 8192
    assert device.backends["vllm"].engine_args == {"a": 1}
    assert device.backends["sglang"].engine_args == {}
    assert device.transfer == TransferSpec(isl=8, access_pattern="layer", nixlbench={"backend": "UCX"})
    assert model.tp_sizes == (1, 4)
    assert model.get_device_config(4) is device and model.get_device_config(2) is None
    assert model.configurator == "pkg.mod:Cls"


def test_to_dict_is_plain_data():
    data = ModelConfig.from_entry("org/m", ENTRY).to_dict()
    assert json.loads(json.dumps(data))["device_configs"]["4"]["num_gpu_blocks_override"] == 8192
    assert data["device_configs"][4]["transfer"] == {
        "isl": 8,
        "access_pattern": "layer",
        "nixlbench": {"backend": "UCX"},
    }
    assert data["supported_configs"][1] == {"cb": False, "tp_size": 1, "warmup_shapes": [[64, 20, 4]]}
