"""The shipped model_configs.yaml against the real HF configs shipped with it."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT, all_fixture_ids, hf_config_dict, hf_config_path

from registry.hf_config import load_hf_config
from registry.model_registry import PACKAGED_CONFIG, ModelConfigRegistry

FIXTURES = all_fixture_ids()


@pytest.fixture(scope="module")
def registry():
    return ModelConfigRegistry(PACKAGED_CONFIG)


def test_every_fixture_is_registered(registry):
    assert len(FIXTURES) >= 15
    assert sorted(registry.list_models()) == FIXTURES


@pytest.mark.parametrize("model_id", FIXTURES)
def test_each_config_matches_exactly_its_own_entry(registry, model_id, offline_hf):
    """As a dict, a bare config.json path (no model ID), a directory, a model ID and a PretrainedConfig."""
    path = hf_config_path(model_id)
    assert registry.find_matching_model(hf_config_dict(model_id)) == model_id
    assert registry.find_matching_model(str(path)) == model_id
    assert registry.find_matching_model(path.parent) == model_id
    assert registry.find_matching_model(model_id) == model_id
    assert registry.find_matching_model(load_hf_config(path)) == model_id


@pytest.mark.parametrize("model_id", FIXTURES)
def test_no_other_entry_ties_with_its_own(registry, model_id):
    reports = registry.explain(hf_config_dict(model_id))
    own = next(r for r in reports if r.name == model_id)
    assert own.matched and own.chosen
    rivals = [r for r in reports if r.matched and r.name != model_id]
    assert all(r.field_count < own.field_count for r in rivals), rivals


@pytest.mark.parametrize("model_id", FIXTURES)
def test_runtime_lengths_fit_the_model(registry, model_id):
    data = hf_config_dict(model_id)
    limit = (
        data.get("max_position_embeddings")
        or (data.get("text_config") or {}).get("max_position_embeddings")
        or data.get("n_positions")
    )
    for rc in registry.get_model_config(model_id).supported_configs:
        if rc.cb:
            assert rc.max_model_len <= limit
        else:
            assert all(prompt + new <= limit for prompt, new, _ in rc.warmup_shapes)


def test_granite_tp4_is_exactly_the_seed(registry):
    model = registry.get_model_config("ibm-granite/granite-3.3-8b-instruct")
    assert model.architecture.to_dict() == {
        "model_type": "granite",
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "num_hidden_layers": 40,
        "max_position_embeddings": 131072,
        "vocab_size": 49159,
    }
    cb = [rc for rc in model.supported_configs if rc.cb]
    assert [(rc.tp_size, rc.max_model_len, rc.max_num_seqs) for rc in cb] == [(4, 32768, 32)]
    device = model.device_configs[4]
    assert device.env_vars == {"VLLM_DT_MAX_BATCH_TKV_LIMIT": 131072, "FLEX_HDMA_P2PSIZE": 268435456}
    assert device.num_gpu_blocks_override == {"torch_sendnn<1.0.3": 2080, "default": 8192}
    assert device.chunked_prefill_config == {"max_num_batched_tokens": 1024}
    fp8 = registry.get_model_config("ibm-granite/granite-3.3-8b-instruct-FP8")
    assert fp8.device_configs[4].env_vars == device.env_vars
    assert fp8.architecture.field_count == model.architecture.field_count + 2


def test_llama_8b_instruct_tp4_transfer(registry):
    transfer = registry.get_model_config("meta-llama/Llama-3.1-8B-Instruct").device_configs[4].transfer
    assert (transfer.kvcache_quant_mode, transfer.isl, transfer.osl, transfer.num_requests) == (
        "fp8",
        8192,
        2048,
        10,
    )
    assert (transfer.access_pattern, transfer.page_size) == ("block", 16)
    assert transfer.nixlbench == {"backend": "UCX", "source": "memory", "destination": "memory"}


def test_deepseek_r1_has_a_tp8_device_config(registry):
    model = registry.get_model_config("deepseek-ai/DeepSeek-R1")
    assert 8 in model.device_configs and model.device_configs[8].transfer is not None
    assert 8 in {rc.tp_size for rc in model.supported_configs}


def test_legacy_version_key_of_the_seed_is_accepted(tmp_path):
    text = PACKAGED_CONFIG.read_text().replace("torch_sendnn<1.0.3: 2080", "torch_sendnn_lt_1_0_3: 2080")
    path = tmp_path / "legacy.yaml"
    path.write_text(text)
    device = (
        ModelConfigRegistry(path).get_model_config("ibm-granite/granite-3.3-8b-instruct").device_configs[4]
    )
    assert device.num_gpu_blocks_override == {"torch_sendnn_lt_1_0_3": 2080, "default": 8192}


def test_the_wheel_ships_the_registry_schema_and_snapshots_and_works_offline(tmp_path):
    """Build the real wheel, install it into an empty directory, match a model ID there with no HF cache."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed in this environment")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "model_configs.yaml"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("registry", "configurators"):
        shutil.copytree(
            ROOT / package, source / package, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)], check=True
    )
    (wheel,) = tmp_path.glob("modelreg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"registry/model_configs.yaml", "registry/model_configs.schema.json"} <= names
    assert {f"registry/hf_configs/{model_id}/config.json" for model_id in FIXTURES} <= names

    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    code = (
        "import registry.model_registry as m;"
        "assert m.PACKAGED_CONFIG.is_file() and not m.PACKAGED_CONFIG.is_symlink();"
        "print(m.get_model_registry().find_matching_model('deepseek-ai/DeepSeek-R1'))"
    )
    env = {
        "PYTHONPATH": str(target),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PATH": "/usr/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "deepseek-ai/DeepSeek-R1"
