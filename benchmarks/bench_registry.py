"""Registry performance: CLI cold start, loading a 10,000-model registry, matching at that size.

Prints each figure next to its target. Run: ``.venv/bin/python benchmarks/bench_registry.py``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.model_registry import ModelConfigRegistry, load_registry_file  # noqa: E402

MODELS = 10_000
FAMILIES = 50


def generate_registry(path: Path, models: int = MODELS) -> None:
    """Shaped like the packaged registry: families, extends, flow-style runtimes, some device configs."""
    lines = ["version: 1", "defaults:", "  env_vars: {MODELREG_BENCH: 1}", "families:"]
    for f in range(FAMILIES):
        lines += [
            f"  fam{f}:",
            f"    architecture: {{model_type: type{f}, hidden_size: {1024 * (1 + f % 8)}}}",
            "    supported_configs:",
            "      - {cb: true, tp_size: 1, max_model_len: 8192, max_num_seqs: 16}",
            "      - {cb: true, tp_size: 4, max_model_len: 32768, max_num_seqs: 32}",
        ]
    lines.append("models:")
    for i in range(models):
        lines += [
            f"  bench-org/model-{i:05d}:",
            f"    extends: fam{i % FAMILIES}",
            f"    architecture: {{num_hidden_layers: {i}, vocab_size: {32000 + i % 997}}}",
        ]
        if i % 10 == 0:
            lines += ["    device_configs:", "      4: {env_vars: {VLLM_DT_MAX_BATCH_TKV_LIMIT: 131072}}"]
    path.write_text("\n".join(lines) + "\n")


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cold_start(repeat: int = 9) -> float:
    exe = ROOT / ".venv" / "bin" / "modelreg"
    argv = [str(exe), "models"] if exe.exists() else [sys.executable, "-m", "registry", "models"]
    env = {k: v for k, v in os.environ.items() if k != "MODELREG_CONFIG_FILE"}
    env["HF_HUB_OFFLINE"] = "1"
    return median_time(lambda: subprocess.run(argv, check=True, capture_output=True, env=env), repeat)


def report(label: str, value: float, target: float, unit: str) -> bool:
    ok = value < target
    print(f"{label:<44} {value:10.3f} {unit:<3} (target < {target:g} {unit}) {'OK' if ok else 'SLOW'}")
    return ok


def main() -> int:
    results = []
    results.append(report("modelreg models cold start (median of 9)", cold_start() * 1e3, 300, "ms"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_registry.yaml"
        generate_registry(path)
        lines = path.read_text().count("\n")
        seconds = median_time(lambda: load_registry_file(path), 3)
        results.append(
            report(f"load+validate {MODELS:,} models ({lines:,} lines, median of 3)", seconds, 1.0, "s")
        )
        registry = ModelConfigRegistry(path)
        queries = []
        for i in range(0, MODELS, 37):
            f = i % FAMILIES
            queries.append(
                {
                    "model_type": f"type{f}",
                    "hidden_size": 1024 * (1 + f % 8),
                    "num_hidden_layers": i,
                    "vocab_size": 32000 + i % 997,
                }
            )
        assert registry.find_matching_model(queries[5]) == f"bench-org/model-{5 * 37:05d}"
        rounds = 20
        start = time.perf_counter()
        for _ in range(rounds):
            for query in queries:
                registry.find_matching_model(query)
        per_query = (time.perf_counter() - start) / (rounds * len(queries))
        results.append(
            report(f"find_matching_model at {MODELS:,} models (per query)", per_query * 1e3, 1.0, "ms")
        )
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
