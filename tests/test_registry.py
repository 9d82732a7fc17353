"""ModelConfigRegistry: loading, defaults and inheritance, semantic checks, reload, register, "
"configurators."""

from __future__ import annotations

import sys
import textwrap
import threading

import pytest
from conftest import ROOT, hf_config_dict

import registry.model_registry as model_registry
from registry.errors import ConfigError, MatchError, UsageError
from registry.model_registry import ModelConfigRegistry, get_model_registry

BASE = """\
version: 1
defaults:
  env_vars: {FROM_DEFAULTS: 1, SHARED: default}
  backends:
    vllm: {engine_args: {enforce_eager: false}}
  transfer: {pp_size: 1, page_size: 16}
families:
  fam:
    architecture: {model_type: llama, vocab_size: 128256}
    supported_configs:
      - {cb: true, tp_size: 4, max_model_len: 8192, max_num_seqs: 8}
    env_vars: {SHARED: family}
models:
  org/child:
    extends: fam
    architecture: {num_hidden_layers: 32}
    env_vars: {OWN: x}
    device_configs:
      4:
        env_vars: {TP4: 1}
        num_gpu_blocks_override: {"torch_sendnn<1.0.3": 2080, default: 8192}
        transfer: {isl: 1024, nixlbench: {backend: UCX}}
"""


def write(tmp_path, text: str, name: str = "reg.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        ModelConfigRegistry(path)
    return info.value.problems


@pytest.fixture
def fresh_singleton(monkeypatch):
    monkeypatch.setattr(model_registry, "_registry", None)
    monkeypatch.delenv("MODELREG_CONFIG_FILE", raising=False)


def test_defaults_and_extends_are_deep_merged(tmp_path):
    reg = ModelConfigRegistry(write(tmp_path, BASE))
    model = reg.get_model_config("org/child")
    assert model.architecture.model_type == "llama"
    assert dict(model.architecture.attributes) == {"vocab_size": 128256, "num_hidden_layers": 32}
    # defaults < family < model
    assert model.env_vars == {"FROM_DEFAULTS": 1, "SHARED": "family", "OWN": "x"}
    assert model.backends["vllm"].engine_args == {"enforce_eager": False}
    assert model.backends["sglang"].engine_args == {}
    assert model.supported_configs[0].max_model_len == 8192
    device = model.device_configs[4]
    assert device.tp_size == 4
    assert device.num_gpu_blocks_override == {"torch_sendnn<1.0.3": 2080, "default": 8192}
    # A device transfer section inherits the model-wide transfer fields under its own.
    assert device.transfer.pp_size == 1 and device.transfer.page_size == 16 and device.transfer.isl == 1024
    assert device.transfer.nixlbench == {"backend": "UCX"}
    assert model.transfer.page_size == 16
    assert str(model.source) == f"{tmp_path / 'reg.yaml'}:14:3"
    assert str(device.source) == f"{tmp_path / 'reg.yaml'}:19:7"


def test_extends_another_model_and_child_wins(tmp_path):
    text = BASE + "  org/grandchild:\n    extends: org/child\n    architecture: {hidden_size: 4096}\n"
    model = ModelConfigRegistry(write(tmp_path, text)).get_model_config("org/grandchild")
    assert model.architecture.attributes["hidden_size"] == 4096
    assert model.architecture.field_count == 4  # model_type + vocab_size + num_hidden_layers + hidden_size
    assert 4 in model.device_configs


def test_empty_file_is_an_empty_registry(tmp_path):
    reg = ModelConfigRegistry(write(tmp_path, ""))
    assert reg.list_models() == []
    assert reg.find_matching_model(hf_config_dict("Qwen/Qwen3-8B")) is None


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: no such file"):
        ModelConfigRegistry(tmp_path / "missing.yaml")


def test_wrong_types_unknown_keys_and_all_errors_at_once(tmp_path):
    found = problems(
        tmp_path,
        """\
        version: 1
        models:
          org/a:
            architecture: {model_type: llama}
            supported_configs:
              - {cb: true, tp_size: 4, max_model_len: 8192, max_num_seqs: 8}
            device_configs:
              4:
                num_gpu_blocks_override: abc
                env_var: {X: 1}
          org/b:
            architecure: {model_type: llama}
        """,
    )
    path = tmp_path / "reg.yaml"
    assert found == [
        f'{path}:9:9: models."org/a".device_configs.4.num_gpu_blocks_override: expected an integer '
        "or a version "
        "map, found 'abc'",
        f"{path}:10:9: models.\"org/a\".device_configs.4.env_var: unknown key 'env_var'; did you "
        "mean 'env_vars'?",
        f"{path}:11:3: models.\"org/b\": expected a model entry with 'architecture' (or 'extends'), "
        "found a mapping",
        f"{path}:12:5: models.\"org/b\".architecure: unknown key 'architecure'; did you mean 'architecture'?",
    ]


def test_runtime_config_shape_errors(tmp_path):
    found = problems(
        tmp_path,
        """\
        models:
          org/a:
            architecture: {model_type: llama}
            supported_configs:
              - {cb: true, tp_size: 0, max_model_len: 8192, max_num_seqs: 8}
              - {cb: false, tp_size: 1, warmup_shapes: [[1, 2]]}
              - {cb: true, tp_size: 1}
        """,
    )
    assert any("supported_configs.0.tp_size: expected a number >= 1, found 0" in p for p in found)
    assert any(
        "supported_configs.1.warmup_shapes.0: expected [prompt_len, new_tokens, batch_size]" in p
        for p in found
    )
    assert any("supported_configs.2: missing required key 'max_model_len'" in p for p in found)


def test_version_must_be_1(tmp_path):
    (problem,) = problems(tmp_path, "version: 2\nmodels: {}\n")
    assert problem.endswith("version: expected 1 (the only schema version), found 2")
    assert ":1:1:" in problem


def test_null_pattern_values_also_nested(tmp_path):
    found = problems(
        tmp_path,
        """\
        models:
          org/a:
            architecture:
              model_type: llama
              hidden_size: null
              quantization_config: {quant_method: ~}
            supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]
        """,
    )
    path = tmp_path / "reg.yaml"
    assert found == [
        f'{path}:5:7: models."org/a".architecture.hidden_size: expected a value to match, found null '
        "(remove the attribute to ignore it in matching)",
        f'{path}:6:29: models."org/a".architecture.quantization_config.quant_method: expected a '
        "value to match, "
        "found null (remove the attribute to ignore it in matching)",
    ]


def test_duplicate_runtime_configs_static_shapes_order_insensitive(tmp_path):
    found = problems(
        tmp_path,
        """\
        models:
          org/a:
            architecture: {model_type: llama}
            supported_configs:
              - {cb: false, tp_size: 1, warmup_shapes: [[64, 20, 4], [128, 20, 2]]}
              - {cb: false, tp_size: 1, warmup_shapes: [[128, 20, 2], [64, 20, 4]]}
              - {cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}
              - {cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}
        """,
    )
    path = tmp_path / "reg.yaml"
    assert found == [
        f'{path}:6:9: models."org/a".supported_configs.1: duplicate runtime config (same as '
        "supported_configs.0)",
        f'{path}:8:9: models."org/a".supported_configs.3: duplicate runtime config (same as '
        "supported_configs.2)",
    ]


def test_device_config_without_runtime_and_model_without_runtime(tmp_path):
    found = problems(
        tmp_path,
        """\
        models:
          org/a:
            architecture: {model_type: llama}
            supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]
            device_configs:
              8: {env_vars: {X: 1}}
          org/b:
            architecture: {model_type: llama, hidden_size: 1}
        """,
    )
    path = tmp_path / "reg.yaml"
    assert found == [
        f'{path}:6:7: models."org/a".device_configs.8: device config for tp_size 8 has no runtime '
        "config of that "
        "tp_size (supported_configs tp_size: 1)",
        f'{path}:7:3: models."org/b".supported_configs: expected at least one runtime config, found none',
    ]


def test_inheritance_cycle_and_unknown_parent_name_the_chain(tmp_path):
    found = problems(
        tmp_path,
        """\
        families:
          f1: {extends: f2}
          f2: {extends: f1}
        models:
          org/a: {extends: f1}
          org/b: {extends: famliy}
        """,
    )
    path = tmp_path / "reg.yaml"
    assert found == [
        f"{path}:3:8: families.f2.extends: inheritance cycle: org/a -> f1 -> f2 -> f1",
        f"{path}:6:11: models.\"org/b\".extends: unknown parent 'famliy' (chain: org/b -> famliy)",
    ]


def test_missing_model_type_after_inheritance(tmp_path):
    (problem,) = problems(
        tmp_path,
        """\
        families:
          f: {supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]}
        models:
          org/a: {extends: f}
        """,
    )
    assert problem.endswith(
        "reg.yaml:4:3: models.\"org/a\".architecture: missing required key 'model_type' (neither "
        "written nor inherited)"
    )


def test_bad_configurator_reference_fails_at_load(tmp_path):
    found = problems(
        tmp_path,
        """\
        models:
          org/a:
            architecture: {model_type: llama}
            supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]
            configurator: no_such_pkg.mod:Thing
          org/b:
            architecture: {model_type: llama, x: 1}
            supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]
            configurator: json:JSONDecoder
          org/c:
            architecture: {model_type: llama, x: 2}
            supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]
            configurator: not a reference
        """,
    )
    path = tmp_path / "reg.yaml"
    assert found[0].startswith(
        f"{path}:13:5: models.\"org/c\".configurator: expected 'module.path:ClassName'"
    )
    assert len(found) == 1  # schema problems are reported before any import is attempted
    found = problems(tmp_path, (tmp_path / "reg.yaml").read_text().replace("not a reference", "json:loads"))
    assert found[0] == (
        f"{path}:5:5: models.\"org/a\".configurator: cannot import configurator module 'no_such_pkg.mod': "
        "No module named 'no_such_pkg'"
    )
    assert found[1] == (
        f"{path}:9:5: models.\"org/b\".configurator: expected configurator class 'json:JSONDecoder' "
        "to have a "
        "configure method, found none"
    )
    assert (
        found[2]
        == f"{path}:13:5: models.\"org/c\".configurator: expected a class named 'loads' in module 'json', "
        "found none"
    )


def test_custom_configurator_is_instantiated_with_the_model(tmp_path, monkeypatch):
    (tmp_path / "my_configs.py").write_text(
        "class MyConfigurator:\n"
        "    def __init__(self, model_config):\n"
        "        self.model_config = model_config\n"
        "    def configure(self, target):\n"
        "        return target\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    text = BASE.replace(
        "    env_vars: {OWN: x}\n", "    env_vars: {OWN: x}\n    configurator: my_configs:MyConfigurator\n"
    )
    reg = ModelConfigRegistry(write(tmp_path, text))
    configurator = reg.get_configurator("org/child")
    assert type(configurator).__name__ == "MyConfigurator"
    assert configurator.model_config is reg.get_model_config("org/child")


def test_default_configurator_reference(tmp_path):
    pytest.importorskip("configurators.default")
    reg = ModelConfigRegistry(write(tmp_path, BASE))
    assert type(reg.get_configurator("org/child")).__name__ == "DefaultConfigurator"


def test_registry_package_never_imports_configurators_statically():
    for path in (ROOT / "registry").rglob("*.py"):
        text = path.read_text()
        assert "import configurators" not in text and "from configurators" not in text, path


def test_unknown_name_did_you_mean(tmp_path):
    reg = ModelConfigRegistry(write(tmp_path, BASE))
    with pytest.raises(MatchError, match=r"no model named 'org/chlid' in .*; did you mean 'org/child'\?"):
        reg.get_model_config("org/chlid")


def test_reload_is_atomic(tmp_path):
    path = write(tmp_path, BASE)
    reg = ModelConfigRegistry(path)
    path.write_text(BASE + "  org/bad:\n    extends: nowhere\n")
    with pytest.raises(ConfigError, match="unknown parent 'nowhere'"):
        reg.reload()
    assert reg.list_models() == ["org/child"]  # the old registry keeps serving
    path.write_text(BASE + "  org/new:\n    extends: fam\n    architecture: {hidden_size: 1}\n")
    reg.reload()
    assert reg.list_models() == ["org/child", "org/new"]


def test_register_model_validates_like_the_loader(tmp_path):
    reg = ModelConfigRegistry(write(tmp_path, BASE))
    model = reg.register_model("org/runtime", {"extends": "fam", "architecture": {"num_hidden_layers": 80}})
    assert model.architecture.attributes == {"vocab_size": 128256, "num_hidden_layers": 80}
    assert model.env_vars["FROM_DEFAULTS"] == 1
    config = {"model_type": "llama", "vocab_size": 128256, "num_hidden_layers": 80}
    assert reg.find_matching_model(config) == "org/runtime"
    with pytest.raises(ConfigError) as info:
        reg.register_model("org/bad", {"architecture": {"model_type": "llama"}, "supported_configs": "x"})
    assert info.value.problems == [
        "register_model('org/bad'): models.\"org/bad\".supported_configs: expected a list, found 'x'"
    ]
    with pytest.raises(ConfigError, match="unknown parent 'nope'"):
        reg.register_model("org/bad2", {"extends": "nope"})
    assert "org/bad" not in reg.list_models() and "org/bad2" not in reg.list_models()
    reg.reload()  # a reload serves the file as written: runtime registrations are dropped
    assert reg.list_models() == ["org/child"]


def test_singleton_is_shared_across_threads(fresh_singleton, monkeypatch):
    calls = []
    real_init = ModelConfigRegistry.__init__

    def counting_init(self, path=None):
        calls.append(path)
        real_init(self, path)

    monkeypatch.setattr(ModelConfigRegistry, "__init__", counting_init)
    seen = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        seen.append(get_model_registry())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert all(r is seen[0] for r in seen)


def test_config_path_precedence(fresh_singleton, monkeypatch, tmp_path):
    assert get_model_registry().config_path == str(model_registry.PACKAGED_CONFIG)
    env_file = write(tmp_path, BASE, "env.yaml")
    monkeypatch.setenv("MODELREG_CONFIG_FILE", str(env_file))
    assert get_model_registry().list_models() == ["org/child"]
    explicit = write(tmp_path, "models: {}\n", "explicit.yaml")
    assert get_model_registry(explicit).list_models() == []


def test_transformers_not_imported_by_loading(tmp_path):
    import subprocess

    code = "import sys; from registry.model_registry import get_model_registry;"
    code += "get_model_registry().list_models();"
    code += "print(sorted(m for m in ('transformers', 'jsonschema', 'huggingface_hub') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_engine_model_config_object_and_model_id_tie_break(tmp_path):
    """Two equally specific entries: the engine's model ID decides; without it the tie is an error."""
    text = (
        "models:\n"
        "  org/one: {architecture: {model_type: gpt2, n_layer: 12}, "
        "supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]}\n"
        "  org/two: {architecture: {model_type: gpt2, n_embd: 768}, "
        "supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]}\n"
    )
    reg = ModelConfigRegistry(write(tmp_path, text))
    from registry.hf_config import load_hf_config

    hf_config = load_hf_config(hf_config_dict("openai-community/gpt2"))

    class EngineModelConfig:
        """Stands in for vLLM's ModelConfig (not installed here): ``.hf_config`` and ``.model``."""

        def __init__(self, model):
            self.hf_config = hf_config
            self.model = model

    assert reg.find_matching_model(EngineModelConfig("org/two")) == "org/two"
    assert reg.find_matching_model(hf_config, model_id="org/one") == "org/one"
    with pytest.raises(MatchError, match="'org/one', 'org/two'"):
        reg.find_matching_model(EngineModelConfig("somebody/else"))


def test_missing_env_config_file_is_an_error(fresh_singleton, monkeypatch, tmp_path):
    monkeypatch.setenv("MODELREG_CONFIG_FILE", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError, match=r"gone\.yaml: no such file"):
        get_model_registry()


def test_non_path_config_and_non_string_names_are_clear_errors():
    with pytest.raises(UsageError) as caught:
        get_model_registry(42)  # type: ignore[arg-type]
    assert str(caught.value) == "config_path: expected a file path (str or os.PathLike), found 42"
    registry = get_model_registry()
    with pytest.raises(UsageError):
        registry.reload(b"model_configs.yaml")  # type: ignore[arg-type]
    assert registry.list_models()  # the loaded registry keeps serving
    with pytest.raises(MatchError) as caught:
        registry.get_model_config(None)  # type: ignore[arg-type]
    assert str(caught.value) == "expected a model name (a string, as `modelreg models` lists), found None"
