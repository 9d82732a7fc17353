"""How fast planning is: the CLI's cold start, and 10,000 specs planned in-process.

``modelreg plan`` on a KVBench architecture YAML must never pay for importing
transformers, and a sweep may plan thousands of layouts, so both figures are
printed; the in-process budget is 1 s for 10,000 specs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from configurators.nixlbench import nixlbench_args  # noqa: E402
from configurators.transfer import plan_transfer  # noqa: E402
from registry.kvbench_model import load_kvbench_model  # noqa: E402
from registry.model_config import TransferSpec  # noqa: E402

MODELREG = ROOT / ".venv" / "bin" / "modelreg"
# Model IDs resolve from the embedded snapshot: no network wait in the figures.
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}
SPECS = 10_000


def cold_start(args: list[str], runs: int = 5) -> float:
    """Median wall time of a fresh ``modelreg`` process, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [str(MODELREG), *args], capture_output=True, text=True, cwd=ROOT, check=False, env=OFFLINE
        )
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"modelreg {' '.join(args)} failed: {done.stderr}")
    return statistics.median(times)


def specs() -> list[TransferSpec]:
    """10,000 distinct layouts and workloads (TP, PP, ISL, page, access, requests)."""
    out = []
    for i in range(SPECS):
        out.append(
            TransferSpec(
                tp_size=(1, 2, 4, 8)[i % 4],
                pp_size=1 + (i // 4) % 16,
                kvcache_quant_mode="fp8",
                model_quant_mode="fp8",
                isl=1024 * (1 + i % 32),
                num_requests=1 + i % 100,
                page_size=(16, 64, 256)[i % 3],
                access_pattern=("block", "layer")[i % 2],
            )
        )
    return out


def in_process(model, compat: str | None) -> float:
    batch = specs()
    start = time.perf_counter()
    for spec in batch:
        nixlbench_args(plan_transfer(model, spec, compat=compat), backend="GDS", source="gpu")
    return time.perf_counter() - start


def main() -> int:
    kvbench_args = [
        "plan",
        "--model",
        "examples/model_deepseek_r1.yaml",
        "--model_config",
        "examples/block-tp1-pp16.yaml",
    ]
    hf_args = ["plan", "--model", "deepseek-ai/DeepSeek-R1", "--model_config", "examples/block-tp1-pp16.yaml"]
    r1_yaml = load_kvbench_model(str(ROOT / "examples" / "model_deepseek_r1.yaml"))
    r1_hf = json.loads(
        (ROOT / "registry" / "hf_configs" / "deepseek-ai" / "DeepSeek-R1" / "config.json").read_text()
    )
    figures = {
        "cold start, KVBench YAML (s)": cold_start(kvbench_args),
        "cold start, embedded HF config (s)": cold_start(hf_args),
        f"{SPECS} plans + nixlbench args, KVBench arithmetic (s)": in_process(r1_yaml, "kvbench"),
        f"{SPECS} plans + nixlbench args, exact geometry from config.json (s)": in_process(r1_hf, None),
    }
    width = max(map(len, figures))
    for label, seconds in figures.items():
        print(f"{label:{width}}  {seconds:.3f}")
    slowest = max(v for k, v in figures.items() if str(SPECS) in k)
    print(f"budget: {SPECS} specs < 1 s -> {'ok' if slowest < 1 else 'OVER'}")
    return 0 if slowest < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
