"""Sweep throughput: 10,000 candidate layouts enumerated, sized and ranked in-process (target < 1 s).

A wide DeepSeek-V3 search space on GB200 (72-GPU NVLink domain): 8 tp × 3 pp × 8 dp × 3 moe_tp × 8 moe_ep
= 4,608 candidates per role, two roles (prefill, decode) plus an aggregated copy → 13,824 candidates, and
every kept prefill × decode pair combined into xPyD replicas.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from configurators.experiments import load_experiments
from configurators.sweep import sweep

SPACE = """\
      num_gpu_per_worker: [8, 16, 32, 64]
      tp_list: [1, 2, 4, 8, 16, 32, 64, 128]
      pp_list: [1, 2, 4]
      dp_list: [1, 2, 4, 8, 16, 32, 64, 128]
      moe_tp_list: [1, 2, 4]
      moe_ep_list: [1, 2, 4, 8, 16, 32, 64, 128]
      moe_quant_mode: w4afp8
"""

TEXT = f"""\
wide_agg:
  mode: patch
  serving_mode: agg
  model_path: deepseek-ai/DeepSeek-V3
  total_gpus: 512
  system_name: gb200
  backend_name: vllm
  config:
    worker_config:
{SPACE}
wide_disagg:
  mode: patch
  serving_mode: disagg
  model_path: deepseek-ai/DeepSeek-V3
  total_gpus: 512
  system_name: gb200
  backend_name: vllm
  config:
    prefill_worker_config:
{SPACE}
    decode_worker_config:
{SPACE}
    replica_config: {{num_gpu_per_replica: [64, 128, 192, 256], max_gpu_per_replica: 256}}
"""


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wide.yaml"
        path.write_text(TEXT)
        experiments = load_experiments(path).experiments
        sweep(experiments)  # warm caches of imports and the model config
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            results = sweep(experiments)
            runs.append(time.perf_counter() - start)
    candidates = sum(r.candidates for r in results)
    kept = sum(len(r.layouts) for r in results)
    replicas = sum(len(r.replicas) for r in results)
    best = min(runs)
    print(
        f"candidates: {candidates}  kept layouts: {kept}  dropped: {sum(len(r.dropped) for r in results)}  "
        f"replicas: {replicas}"
    )
    print(
        f"sweep in-process: best {best * 1e3:.1f} ms, median {sorted(runs)[2] * 1e3:.1f} ms "
        f"(target < 1000 ms for 10,000 candidates) → "
        f"{'OK' if best < 1.0 and candidates >= 10_000 else 'MISSED'}"
    )
    return 0 if best < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
