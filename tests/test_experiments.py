"""Experiment files: the shipped examples, patch vs replace, profiles, and every malformed field."""

from __future__ import annotations

import textwrap

import pytest

from configurators.experiments import CONFIG_DEFAULTS, load_experiments
from registry.errors import ConfigError
from tests.conftest import EXAMPLES

HEAD = """\
  mode: {mode}
  serving_mode: {serving}
  model_path: meta-llama/Llama-3.1-70B
  total_gpus: 16
  system_name: h100_sxm
"""


def load(tmp_path, text: str):
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(text))
    return load_experiments(path)


def errors(tmp_path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.exit_code == 2
    return info.value.problems


def test_seed_examples_load():
    multi = load_experiments(EXAMPLES / "experiments" / "deepseek_v3_multi.yaml")
    assert [e.name for e in multi.experiments] == ["baseline_agg", "optimized_disagg", "w4afp8_disagg"]
    assert multi.experiments[2].decode_worker_config.moe_quant_mode == "w4afp8"
    # patch keeps the defaults the experiment does not touch
    assert multi.experiments[2].decode_worker_config.gemm_quant_mode == "fp8_block"
    hetero = load_experiments(EXAMPLES / "experiments" / "hetero_disagg.yaml").experiments[0]
    assert (hetero.system_name, hetero.decode_system_name) == ("h100_sxm", "h200_sxm")
    dense = load_experiments(EXAMPLES / "experiments" / "llama70b_dense.yaml").experiments
    assert dense[1].prefill_worker_config.kvcache_quant_mode == "fp8"  # the max_throughput profile


def test_patch_merges_dicts_and_replaces_lists(tmp_path):
    exp = load(
        tmp_path,
        "x:\n" + HEAD.format(mode="patch", serving="disagg") + "  config:\n"
        "    decode_worker_config: {tp_list: [2]}\n    replica_config: {max_decode_worker: 4}\n",
    ).experiments[0]
    assert exp.decode_worker_config.tp_list == (2,)  # list replaced whole
    assert exp.decode_worker_config.dp_list == tuple(CONFIG_DEFAULTS["decode_worker_config"]["dp_list"])
    assert exp.replica_config.max_decode_worker == 4
    assert exp.replica_config.num_gpu_per_replica == tuple(range(8, 129, 8))  # dict merged
    assert (exp.isl, exp.osl, exp.prefix, exp.ttft, exp.tpot, exp.backend_name) == (
        4000,
        1000,
        0,
        1000.0,
        40.0,
        "trtllm",
    )


def test_replace_uses_only_the_file_and_names_every_missing_field(tmp_path):
    problems = errors(
        tmp_path,
        "x:\n"
        + HEAD.format(mode="replace", serving="agg")
        + "  config:\n    worker_config: {tp_list: [1]}\n",
    )
    missing = [p for p in problems if "missing required field" in p]
    assert len(missing) == 7  # 5 quant modes + num_gpu_per_worker + pp_list
    assert all(p.startswith(f"{tmp_path / 'exp.yaml'}:8:5: x.config.worker_config:") for p in missing)
    complete = (
        "x:\n" + HEAD.format(mode="replace", serving="agg") + "  config:\n    worker_config:\n"
        "      {gemm_quant_mode: float16, moe_quant_mode: float16, kvcache_quant_mode: fp8,\n"
        "       fmha_quant_mode: float16, comm_quant_mode: half,\n"
        "       num_gpu_per_worker: [8], tp_list: [8], pp_list: [1]}\n"
    )
    exp = load(tmp_path, complete).experiments[0]
    assert exp.worker_config.dp_list == (1,)  # format-level default, not the search-space default


def test_exps_order_and_unknown_name(tmp_path):
    two = (
        "a:\n" + HEAD.format(mode="patch", serving="agg") + "b:\n" + HEAD.format(mode="patch", serving="agg")
    )
    assert [e.name for e in load(tmp_path, "exps: [b, a]\n" + two).experiments] == ["b", "a"]
    assert [e.name for e in load(tmp_path, two).experiments] == ["a", "b"]
    problems = errors(tmp_path, "exps: [b, c]\n" + two)
    assert problems == [f"{tmp_path / 'exp.yaml'}:1:11: exps.1: no experiment named 'c' in this file"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("  isl: -3\n", ":7:3: x.isl: expected a number >= 1, found -3"),
        (
            "  serving_mode2: agg\n",
            ":7:3: x.serving_mode2: unknown key 'serving_mode2'; did you mean 'serving_mode'?",
        ),
        ("  backend_name: tensorrt\n", ":7:3: x.backend_name: expected one of"),
        ("  decode_system_name: h300\n", ":7:3: x.decode_system_name: expected one of"),
        ("  profiles: [qualty]\n", "x.profiles.0: unknown profile 'qualty' (did you mean 'quality'?)"),
        ("  prefix: 4000\n", ":7:3: x.prefix: expected a prefix shorter than isl (4000), found 4000"),
        ("  config: {worker_config: {tp_lst: [1]}}\n", "x.config.worker_config.tp_lst: unknown key 'tp_lst'"),
        ("  config: {worker_config: {tp_list: [0]}}\n", "x.config.worker_config.tp_list.0: expected"),
        (
            "  config: {worker_config: {moe_quant_mode: fp4}}\n",
            "x.config.worker_config.moe_quant_mode: expected one of",
        ),
        (
            "  config: {replica_config: {max_prefill_worker: 2}}\n",
            "x.config.replica_config: replica_config applies",
        ),
        ("  config: {nextn: 9}\n", "x.config.nextn: expected"),
    ],
)
def test_malformed_fields_name_line_and_key_path(tmp_path, line, expected):
    problems = errors(tmp_path, "x:\n" + HEAD.format(mode="patch", serving="agg") + line)
    assert any(expected in p for p in problems), problems


def test_missing_required_top_level_field(tmp_path):
    problems = errors(
        tmp_path, "x:\n  mode: patch\n  serving_mode: agg\n  total_gpus: 8\n  system_name: h100_sxm\n"
    )
    assert any("x" in p and "model_path" in p for p in problems), problems


def test_worker_config_in_the_wrong_serving_mode(tmp_path):
    problems = errors(
        tmp_path,
        "x:\n" + HEAD.format(mode="patch", serving="disagg") + "  config: {worker_config: {tp_list: [1]}}\n",
    )
    assert problems == [
        f"{tmp_path / 'exp.yaml'}:7:12: x.config.worker_config: worker_config applies to serving_mode agg; "
        "this experiment is serving_mode disagg"
    ]
