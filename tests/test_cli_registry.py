"""The registry commands: models, match, validate, schema (in-process and as real subprocesses)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from conftest import MODELREG, ROOT, all_fixture_ids, hf_config_path

import registry.model_registry as model_registry
from registry.cli import main
from registry.model_registry import PACKAGED_CONFIG, SCHEMA_PATH


@pytest.fixture(autouse=True)
def isolated(offline_hf, monkeypatch):
    """Offline HF, no MODELREG_CONFIG_FILE, and a fresh process-wide registry per test."""
    monkeypatch.setattr(model_registry, "_registry", None)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


BAD = """\
version: 1
models:
  org/a:
    architecture: {model_type: llama}
    supported_configs:
      - {cb: true, tp_size: 4, max_model_len: 8192, max_num_seqs: 8}
    device_configs:
      4:
        num_gpu_blocks_override: abc
  org/b:
    architecture: {model_type: llama, hidden_size: 1}
    supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]
    unknown_key: 1
"""


def test_models_text(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "name",
        "model_type",
        "tp_sizes",
        "device_configs",
        "patterns",
        "configurator",
    ]
    granite = next(line for line in lines if line.startswith("ibm-granite/granite-3.3-8b-instruct "))
    assert granite.split()[:5] == ["ibm-granite/granite-3.3-8b-instruct", "granite", "1", "4", "4"]
    assert lines[-1] == f"{len(all_fixture_ids())} models in {PACKAGED_CONFIG}"


def test_models_json_and_csv(capsys, tmp_path):
    code, out, _ = run(capsys, "models", "--format", "json")
    data = json.loads(out)
    assert code == 0 and len(data) == len(all_fixture_ids())
    r1 = next(row for row in data if row["name"] == "deepseek-ai/DeepSeek-R1")
    assert r1 == {
        "name": "deepseek-ai/DeepSeek-R1",
        "model_type": "deepseek_v3",
        "tp_sizes": [8, 16],
        "device_configs": [8],
        "patterns": 7,
        "configurator": "default",
    }
    target = tmp_path / "models.csv"
    code, out, _ = run(capsys, "models", "--format", "csv", "--output", str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert code == 0 and out == ""
    assert {"name": "meta-llama/Llama-3.1-70B", "tp_sizes": "4 8"}.items() <= rows[13].items()


def test_models_with_config_flag_and_env(capsys, tmp_path, monkeypatch):
    path = tmp_path / "one.yaml"
    path.write_text(
        "models:\n  org/x:\n    architecture: {model_type: llama}\n"
        "    supported_configs: [{cb: true, tp_size: 2, max_model_len: 8, max_num_seqs: 1}]\n"
    )
    code, out, _ = run(capsys, "models", "--config", str(path), "--format", "csv")
    assert code == 0 and out.splitlines()[1] == "org/x,llama,2,,1,default"
    monkeypatch.setenv("MODELREG_CONFIG_FILE", str(path))
    code, out, _ = run(capsys, "models", "--format", "json")
    assert [row["name"] for row in json.loads(out)] == ["org/x"]


def test_models_with_a_broken_registry_exits_2(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    code, out, err = run(capsys, "models", "--config", str(path))
    assert code == 2 and out == ""
    assert err.startswith(
        f'modelreg models: error: {path}:9:9: models."org/a".device_configs.4.num_gpu_blocks_override: '
        "expected an integer or a version map, found 'abc'"
    )


def test_match_model_id_offline(capsys):
    code, out, _ = run(capsys, "match", "meta-llama/Llama-3.1-8B-Instruct")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert "  config from:    embedded snapshot" in lines
    assert "  tp sizes:       1, 4 (device configs: 4)" in lines


def test_match_bare_config_path_json(capsys):
    path = hf_config_path("deepseek-ai/DeepSeek-R1")
    code, out, _ = run(capsys, "match", str(path), "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert data["match"] == "deepseek-ai/DeepSeek-R1" and data["model_id"] is None
    assert data["origin"] == f"file: {path}"
    assert data["model_config"]["device_configs"]["8"]["transfer"]["access_pattern"] == "layer"


def test_match_explain_shows_expected_and_actual(capsys):
    directory = hf_config_path("deepseek-ai/DeepSeek-V3").parent
    code, out, _ = run(capsys, "match", str(directory), "--explain")
    assert code == 0
    assert "deepseek-ai/DeepSeek-R1: no match (7 fields)" in out
    assert "deepseek-ai/DeepSeek-V3: CHOSEN (7 fields)" in out
    differs = [line.split() for line in out.splitlines() if "DIFFERS" in line]
    assert differs == [["transformers_version", "'4.46.3'", "'4.33.1'", "DIFFERS"]]


def test_match_explain_json(capsys):
    code, out, _ = run(
        capsys, "match", "ibm-granite/granite-3.3-8b-instruct-FP8", "--explain", "--format", "json"
    )
    data = json.loads(out)
    assert code == 0
    by_name = {c["name"]: c for c in data["candidates"]}
    assert by_name["ibm-granite/granite-3.3-8b-instruct-FP8"]["chosen"] is True
    assert by_name["ibm-granite/granite-3.3-8b-instruct"]["matched"] is True  # less specific: not chosen
    assert by_name["ibm-granite/granite-4-8b-dense"]["matched"] is False


def test_match_nothing_names_model_type_and_suggests_explain(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 3, "vocab_size": 7}))
    code, out, err = run(capsys, "match", str(path))
    assert code == 2 and out == ""
    assert err == (
        f"modelreg match: error: {path}: no entry of model_type 'llama' in {PACKAGED_CONFIG} matches this "
        f"config; run `modelreg match {path} --explain` to see why\n"
    )
    code, out, err = run(capsys, "match", str(path), "--explain")
    assert code == 2
    assert "meta-llama/Llama-3.1-8B: no match" in out
    assert "num_hidden_layers" in out and "DIFFERS" in out


def test_match_unknown_model_id_says_how_to_fix(capsys):
    code, _, err = run(capsys, "match", "nobody/nothing")
    assert code == 2
    assert err.startswith("modelreg match: error: nobody/nothing: no config.json in the HF cache")
    assert "HF_HUB_OFFLINE=0" in err


def test_match_ambiguity_names_both(capsys, tmp_path):
    path = tmp_path / "amb.yaml"
    path.write_text(
        "models:\n"
        "  org/a: {architecture: {model_type: gpt2, n_layer: 12}, "
        "supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]}\n"
        "  org/b: {architecture: {model_type: gpt2, n_embd: 768}, "
        "supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]}\n"
    )
    config = hf_config_path("openai-community/gpt2")
    code, _, err = run(capsys, "match", str(config), "--config", str(path))
    assert code == 2
    assert "matches 2 entries equally well ('org/a', 'org/b', 2 fields each)" in err


def test_validate_ok_and_all_problems(capsys, tmp_path):
    code, out, _ = run(capsys, "validate", str(PACKAGED_CONFIG))
    assert code == 0 and out == f"{PACKAGED_CONFIG}: OK: {len(all_fixture_ids())} models\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    code, out, err = run(capsys, "validate", str(bad), str(PACKAGED_CONFIG))
    assert code == 2
    assert err.splitlines() == [
        f'{bad}:9:9: models."org/a".device_configs.4.num_gpu_blocks_override: expected an integer or a '
        "version map, found 'abc'",
        f"{bad}:13:5: models.\"org/b\".unknown_key: unknown key 'unknown_key'; expected one of: description, "
        "extends, architecture, supported_configs, device_configs, env_vars, backends, transfer, "
        "configurator",
        "modelreg validate: 1 of 2 file(s) have problems",
    ]
    assert out == f"{PACKAGED_CONFIG}: OK: {len(all_fixture_ids())} models\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\na: 2\n", ":2:1: duplicate key 'a' (first defined on line 1)"),
        ("models: !!python/object:os.system {}\n", ":1:9: tag 'tag:yaml.org,2002:python/object:os.system'"),
        ("models: [\n", ":2:1: invalid YAML"),
        ("- 1\n", ":1:1: expected a mapping with 'models', found list"),
    ],
)
def test_validate_malformed_files(capsys, tmp_path, text, expected):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    code, _, err = run(capsys, "validate", str(path))
    assert code == 2
    assert err.startswith(f"{path}{expected}")


def test_validate_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "validate", str(tmp_path / "none.yaml"))
    assert code == 2 and err.startswith(f"{tmp_path / 'none.yaml'}: no such file")


def test_schema_prints_the_schema(capsys, tmp_path):
    code, out, _ = run(capsys, "schema")
    assert code == 0 and json.loads(out) == json.loads(SCHEMA_PATH.read_text())
    target = tmp_path / "schema.json"
    assert run(capsys, "schema", "--output", str(target))[0] == 0
    assert json.loads(target.read_text())["$schema"].endswith("2020-12/schema")


def test_bad_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["models", "--format", "xml"])
    assert info.value.code == 2
    assert "--format" in capsys.readouterr().err


# --- real subprocesses of the installed entry point ---------------------------------------------------------


def _modelreg(*argv: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MODELREG_CONFIG_FILE"}
    env.update({"HF_HUB_OFFLINE": "1", **(env_extra or {})})
    return subprocess.run(
        [str(MODELREG), *argv], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def have_entry_point():
    if not MODELREG.exists():
        pytest.skip(f"{MODELREG} is not installed (make venv)")


def test_subprocess_models(have_entry_point):
    done = _modelreg("models", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == len(all_fixture_ids())


def test_subprocess_match(have_entry_point, tmp_path):
    done = _modelreg("match", "Qwen/Qwen3-VL-8B-Instruct", env_extra={"HF_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "Qwen/Qwen3-VL-8B-Instruct"


def test_subprocess_validate_and_schema(have_entry_point, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    done = _modelreg("validate", str(bad))
    assert done.returncode == 2
    assert done.stderr.startswith(f"{bad}:9:9: ")
    assert "Traceback" not in done.stderr
    done = _modelreg("schema")
    assert done.returncode == 0 and json.loads(done.stdout)["title"].startswith("modelreg")


def test_models_command_does_not_import_transformers():
    code = (
        "import sys, io, contextlib; from registry.cli import main;"
        "buf = io.StringIO();\n"
        "with contextlib.redirect_stdout(buf): main(['models'])\n"
        "print(sorted(m for m in ('transformers', 'jsonschema', 'torch', 'huggingface_hub') if m "
        "in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_model_type_unknown_to_transformers_still_matches_from_the_raw_dict(capsys, tmp_path):
    registry_file = tmp_path / "new.yaml"
    registry_file.write_text(
        "models:\n  lab/brand-new:\n    architecture: {model_type: brand_new_arch, num_hidden_layers: 7}\n"
        "    supported_configs: [{cb: true, tp_size: 1, max_model_len: 8, max_num_seqs: 1}]\n"
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    config = {"model_type": "brand_new_arch", "num_hidden_layers": 7}
    (model_dir / "config.json").write_text(json.dumps(config))
    code, out, _ = run(capsys, "match", str(model_dir), "--config", str(registry_file))
    assert code == 0 and out.splitlines()[0] == "lab/brand-new"
    (model_dir / "config.json").write_text(json.dumps({"model_type": "other_arch"}))
    code, out, err = run(capsys, "match", str(model_dir), "--config", str(registry_file), "--explain")
    assert code == 2
    assert out == f"{model_dir}: no registry entry has this config's model_type\n"
    assert "no entry of model_type 'other_arch'" in err


def test_match_flags_accept_both_spellings(capsys):
    for flag in ("--trust-remote-code", "--trust_remote_code"):
        code, out, _ = run(capsys, "match", str(hf_config_path("openai/gpt-oss-20b")), flag)
        assert code == 0 and out.splitlines()[0] == "openai/gpt-oss-20b"
    code, _, err = run(capsys, "match", "openai/gpt-oss-20b", "--revision", "v1")
    assert code == 2 and "at revision v1" in err


def test_output_into_a_missing_directory_is_exit_2(capsys, tmp_path):
    target = tmp_path / "no" / "models.txt"
    assert main(["models", "--output", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"modelreg models: error: --output {target}: expected a file in an existing directory, "
        f"but {tmp_path / 'no'} does not exist\n"
    )
    assert not (tmp_path / "no").exists()
