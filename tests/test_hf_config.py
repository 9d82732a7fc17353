"""Resolving model IDs, directories, files and objects to HF configs (registry.hf_config)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, hf_config_dict, hf_config_path

from registry.errors import ResolutionError
from registry.hf_config import ConfigSource, load_config_dict, load_hf_config

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def _cache_config(hf_home, model_id: str, data: dict, commit: str = "a" * 40):
    """Lay out a real huggingface_hub cache entry (refs/main -> snapshots/<commit>/config.json)."""
    repo = hf_home / "hub" / ("models--" + model_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(data))
    return snapshot / "config.json"


def test_model_id_falls_back_to_the_embedded_snapshot(offline_hf):
    source = load_config_dict(LLAMA)
    assert source.origin == "embedded snapshot"
    assert source.model_id == LLAMA
    assert source.data == hf_config_dict(LLAMA)


def test_model_id_prefers_the_hf_cache(offline_hf):
    data = dict(hf_config_dict(LLAMA), num_hidden_layers=99)
    path = _cache_config(offline_hf, LLAMA, data)
    source = load_config_dict(LLAMA)
    assert source.origin == f"HF cache: {path}"
    assert source.data["num_hidden_layers"] == 99


def test_directory_and_file_sources():
    directory = hf_config_path("Qwen/Qwen3-8B").parent
    from_dir = load_config_dict(directory)
    from_file = load_config_dict(str(directory / "config.json"))
    assert from_dir.data == from_file.data == hf_config_dict("Qwen/Qwen3-8B")
    assert from_dir.origin == f"file: {directory / 'config.json'}"
    assert from_dir.model_id is None


def test_mapping_pretrained_config_and_hf_config_objects():
    data = hf_config_dict("google/gemma-2-9b")
    assert load_config_dict(data).data == data
    config = load_hf_config(data)
    from_config = load_config_dict(config)
    assert from_config.data["num_hidden_layers"] == 42
    assert from_config.origin == "transformers Gemma2Config"
    assert from_config.data["transformers_version"] == "4.42.0.dev0"  # as written, not the installed version

    class EngineModelConfig:
        """Stands in for vLLM's ModelConfig (vLLM is not installed here): ``.hf_config`` and ``.model``."""

        def __init__(self, hf_config, model):
            self.hf_config = hf_config
            self.model = model

    wrapped = load_config_dict(EngineModelConfig(config, "google/gemma-2-9b"))
    assert wrapped.model_id == "google/gemma-2-9b"
    assert wrapped.data["hidden_size"] == 3584
    assert load_hf_config(EngineModelConfig(config, "x")) is config


def test_config_source_passes_through():
    source = ConfigSource({"model_type": "llama"}, "test", None)
    assert load_config_dict(source) is source


def test_infinity_and_nan_are_accepted(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "rope_scaling": null, "max_value": Infinity, "odd": NaN}')
    data = load_config_dict(path).data
    assert data["max_value"] == float("inf")
    assert data["odd"] != data["odd"]


def test_real_config_with_infinity_loads_as_its_transformers_class():
    path = hf_config_path("nvidia/Nemotron-H-56B-Base-8K")
    assert "Infinity" in path.read_text()
    assert load_config_dict(path).data["time_step_limit"][1] == float("inf")
    assert type(load_hf_config(path)).__name__ == "NemotronHConfig"


def test_known_model_type_builds_the_transformers_class_with_sub_configs():
    config = load_hf_config(hf_config_path("Qwen/Qwen3-VL-8B-Instruct"))
    assert type(config).__name__ == "Qwen3VLConfig"
    assert type(config.text_config).__name__ == "Qwen3VLTextConfig"
    assert config.text_config.num_hidden_layers == 36


def test_model_id_sets_name_or_path(offline_hf):
    config = load_hf_config(LLAMA)
    assert config._name_or_path == LLAMA


def test_unknown_model_type_stays_a_raw_dict(tmp_path):
    data = {"model_type": "totally_new_arch", "num_hidden_layers": 3, "auto_map": {"AutoConfig": "x.Y"}}
    (tmp_path / "config.json").write_text(json.dumps(data))
    # Remote code is never run unless asked for: the raw dict comes back.
    assert load_hf_config(tmp_path) == data


def test_unresolvable_model_id_says_how_to_fix(offline_hf):
    with pytest.raises(ResolutionError) as info:
        load_config_dict("nobody/no-such-model")
    message = str(info.value)
    assert message.startswith("nobody/no-such-model: no config.json in the HF cache")
    assert "set HF_HUB_OFFLINE=0" in message
    assert "model directory or config.json" in message


def test_pinned_revision_never_resolves_to_the_snapshot(offline_hf):
    with pytest.raises(ResolutionError, match="at revision v2"):
        load_config_dict(LLAMA, revision="v2")


@pytest.mark.parametrize("text", ["./missing", "/no/such/dir", "a/b/c", "x.json"])
def test_missing_paths(text):
    with pytest.raises(ResolutionError, match="no such file or directory"):
        load_config_dict(text)


def test_directory_without_config(tmp_path):
    with pytest.raises(ResolutionError, match=r"the directory has no config\.json"):
        load_config_dict(tmp_path)


def test_malformed_json_names_line_and_column(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "model_type": "llama",\n  "x": ,\n}')
    with pytest.raises(ResolutionError) as info:
        load_config_dict(path)
    assert str(info.value).startswith(f"{path}:3:8: invalid JSON")


def test_non_object_json_and_bad_bytes(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(ResolutionError, match="expected a JSON object, found list"):
        load_config_dict(path)
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ResolutionError, match="expected UTF-8 JSON"):
        load_config_dict(path)


def test_unreadable_file(tmp_path):
    """A file without read permission; as root the check runs as ``nobody`` (root reads any mode)."""
    if os.geteuid() != 0:
        path = tmp_path / "config.json"
        path.write_text("{}")
        path.chmod(0)
        with pytest.raises(ResolutionError, match="cannot read it"):
            load_config_dict(path)
        return
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv to drop privileges")
    folder = Path(tempfile.mkdtemp(prefix="modelreg-unreadable-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        path = folder / "config.json"
        path.write_text("{}")
        path.chmod(0)
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]);"
            "from registry.hf_config import load_config_dict;"
            "load_config_dict(sys.argv[2])"
        )
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code]
        proc = subprocess.run([*argv, str(ROOT), str(path)], capture_output=True, text=True)
    finally:
        shutil.rmtree(folder)
    assert proc.returncode != 0
    assert f"ResolutionError: {path}: cannot read it: Permission denied" in proc.stderr


def test_unsupported_object():
    with pytest.raises(ResolutionError, match="cannot read a HF config from a int"):
        load_config_dict(42)


def test_local_sources_import_neither_transformers_nor_huggingface_hub():
    code = (
        "import sys; from registry.hf_config import load_config_dict;"
        f"load_config_dict({str(hf_config_path('Qwen/Qwen3-8B'))!r});"
        "print('transformers' in sys.modules, 'huggingface_hub' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_source_is_named_as_such(text):
    """An empty argument must not be read as the current directory."""
    with pytest.raises(ResolutionError, match="found an empty string"):
        load_config_dict(text)
