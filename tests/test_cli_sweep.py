"""``modelreg sweep`` end to end: text, JSON, CSV, --explain, --plot, errors with exit code 2."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from registry.cli import main
from tests.conftest import EXAMPLES, MODELREG

MULTI = str(EXAMPLES / "experiments" / "deepseek_v3_multi.yaml")
DENSE = str(EXAMPLES / "experiments" / "llama70b_dense.yaml")


def test_text_lists_every_experiment_in_exps_order(capsys, offline_hf):
    assert main(["sweep", MULTI]) == 0
    out = capsys.readouterr().out
    assert out.index("== baseline_agg") < out.index("== optimized_disagg") < out.index("== w4afp8_disagg")
    # FP8 DeepSeek-V3 needs more than 8 H100s per worker: every layout dropped, and said so
    assert "no layout fits: see --explain baseline_agg" in out
    assert "1P7D" in out  # W4AFP8 experts make 8-GPU workers fit


def test_json_structure(capsys, offline_hf):
    assert main(["sweep", DENSE, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    agg, disagg = doc["experiments"]
    assert {"name", "serving_mode", "model", "system", "layouts", "dropped", "replicas"} <= set(agg)
    assert {"role", "tp", "pp", "dp", "moe_tp", "moe_ep", "gpus", "tokens_per_gpu"} <= set(agg["layouts"][0])
    assert {"reason", "rule", "tp"} <= set(agg["dropped"][0])
    replica = disagg["replicas"][0]
    assert {
        "prefill_workers",
        "decode_workers",
        "prefill_layout",
        "decode_layout",
        "gpus_per_replica",
        "replicas",
        "bytes_per_request",
        "transfer_ms",
        "nixlbench",
    } <= set(replica)
    # Llama-3.1-70B, fp8 KV: 80 layers · 8 KV heads · 2 · 128 · 1 B · 8000 tokens = 1,310,720,000 B
    assert replica["bytes_per_request"] == 1_310_720_000


def test_csv_and_output_file(tmp_path, capsys, offline_hf):
    target = tmp_path / "layouts.csv"
    assert main(["sweep", DENSE, "--format", "csv", "--output", str(target)]) == 0
    assert capsys.readouterr().out == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert {r["experiment"] for r in rows} == {"llama70b_agg", "llama70b_disagg"}
    assert any(r["prefill_layout.tp"] == "4" for r in rows)


def test_explain_lists_rules_and_reasons(capsys, offline_hf):
    assert main(["sweep", MULTI, "--explain", "baseline_agg"]) == 0
    out = capsys.readouterr().out
    assert "54 combinations outside the search space: not tp*dp == moe_tp*moe_ep" in out
    assert "trtllm cannot combine attention tp 2 with attention dp 2" in out
    assert "dropped tp8 pp1 dp1 moe_tp1 moe_ep8 (8 GPUs): weights 79.7 GiB > memory 67.1 GiB" in out


def test_explain_unknown_name_is_a_usage_error(capsys, offline_hf):
    assert main(["sweep", MULTI, "--explain", "nope"]) == 2
    assert "--explain: no experiment named 'nope'" in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path, capsys, offline_hf):
    pytest.importorskip("matplotlib")
    png = tmp_path / "layouts.png"
    assert main(["sweep", DENSE, "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_names_the_extra(tmp_path, capsys, monkeypatch, offline_hf):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["sweep", DENSE, "--plot", str(tmp_path / "x.png")]) == 2
    assert "pip install 'modelreg[plot]'" in capsys.readouterr().err


def test_malformed_file_exits_2_with_location(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "x:\n  mode: patch\n  serving_mode: agg\n  model_path: a/b\n"
        "  total_gpus: many\n  system_name: h100_sxm\n"
    )
    assert main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5:3: x.total_gpus: expected" in err and "Traceback" not in err


def test_subprocess_run(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [str(MODELREG), "sweep", DENSE, "--top", "2"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "== llama70b_disagg" in done.stdout and "1P3D" in done.stdout


def test_bad_plot_path_fails_before_anything_is_written(capsys, offline_hf, tmp_path):
    output, plot = tmp_path / "out.txt", tmp_path / "no" / "plot.png"
    assert main(["sweep", DENSE, "--output", str(output), "--plot", str(plot)]) == 2
    assert capsys.readouterr().err == (
        f"modelreg sweep: error: --plot {plot}: expected a file in an existing directory, "
        f"but {tmp_path / 'no'} does not exist\n"
    )
    assert not output.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".modelreg-")] == []


def test_plot_is_png_whatever_the_name(capsys, offline_hf, tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "plot.txt"
    assert main(["sweep", DENSE, "--plot", str(plot)]) == 0
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".modelreg-")] == []


def test_output_and_plot_must_differ(capsys, offline_hf, tmp_path):
    target = tmp_path / "both.png"
    assert main(["sweep", DENSE, "--output", str(target), "--plot", str(target)]) == 2
    err = capsys.readouterr().err
    expected = f"--output and --plot name the same file {str(target)!r}; give each its own"
    assert err == f"modelreg sweep: error: {expected}\n"
    assert not target.exists()
