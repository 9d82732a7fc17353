"""Enumerate worker layouts ``[tp, pp, dp, moe_tp, moe_ep]`` and disaggregated replicas.

Every candidate that satisfies the search-space equations but is then refused
keeps its reason, so ``--explain`` can show why a layout the user expected is
missing. Candidates that never satisfy the equations (``tp × dp ≠ moe_tp × moe_ep``,
a GPU count not in ``num_gpu_per_worker``) are only counted: they are the shape of
the search space, not a verdict on a layout.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from configurators.experiments import ReplicaConfig, WorkerConfig

# Rule names, as shown by --explain and in the JSON `rule` field.
RULE_WIDTH = "tp*dp == moe_tp*moe_ep"
RULE_GPUS = "gpus in num_gpu_per_worker"
RULE_TRTLLM = "trtllm: no attention TP with attention DP"
RULE_VLLM = "vllm: no MoE TP with MoE EP"
RULE_SGLANG = "sglang wide EP: moe_tp == 1"
RULE_HEADS = "attention heads divisible by tp"
RULE_BUDGET = "gpus <= total_gpus"
RULE_WEIGHTS = "weights fit in memory"
RULE_KV = "one sequence's KV fits"


@dataclass(frozen=True)
class WorkerLayout:
    """One worker's parallel layout; ``gpus = tp × dp × pp``."""

    role: str
    tp: int
    pp: int
    dp: int = 1
    moe_tp: int = 1
    moe_ep: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.dp * self.pp

    @property
    def label(self) -> str:
        text = f"tp{self.tp} pp{self.pp}"
        if self.dp > 1 or self.moe_tp > 1 or self.moe_ep > 1:
            text += f" dp{self.dp} moe_tp{self.moe_tp} moe_ep{self.moe_ep}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "tp": self.tp,
            "pp": self.pp,
            "dp": self.dp,
            "moe_tp": self.moe_tp,
            "moe_ep": self.moe_ep,
            "gpus": self.gpus,
        }


@dataclass(frozen=True)
class DroppedLayout:
    layout: WorkerLayout
    rule: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.layout.to_dict(), "rule": self.rule, "reason": self.reason}


@dataclass
class Enumeration:
    """The outcome for one role: kept layouts, refused ones with reasons, filtered counts."""

    kept: list[WorkerLayout] = field(default_factory=list)
    dropped: list[DroppedLayout] = field(default_factory=list)
    filtered: Counter = field(default_factory=Counter)

    @property
    def candidates(self) -> int:
        return len(self.kept) + len(self.dropped) + sum(self.filtered.values())


def enumerate_worker_layouts(
    worker: WorkerConfig,
    *,
    role: str,
    is_moe: bool,
    backend: str,
    attention_heads: int,
    total_gpus: int,
    enable_wideep: bool = False,
    moe_backend: str | None = None,
) -> Enumeration:
    """All layouts of one role that the search space and the backend allow.

    Dense models use ``tp × pp`` only (``dp``, ``moe_tp``, ``moe_ep`` are 1). Order:
    the lists' own order, tp outermost, so output is stable and predictable.
    """
    result = Enumeration()
    allowed = set(worker.num_gpu_per_worker)
    if is_moe:
        grid = product(worker.tp_list, worker.pp_list, worker.dp_list, worker.moe_tp_list, worker.moe_ep_list)
    else:
        grid = ((tp, pp, 1, 1, 1) for tp, pp in product(worker.tp_list, worker.pp_list))
    seen: set[tuple[int, ...]] = set()
    for shape in grid:
        if shape in seen:
            continue
        seen.add(shape)
        tp, pp, dp, moe_tp, moe_ep = shape
        if is_moe and tp * dp != moe_tp * moe_ep:
            result.filtered[RULE_WIDTH] += 1
            continue
        if tp * dp * pp not in allowed:
            result.filtered[RULE_GPUS] += 1
            continue
        layout = WorkerLayout(role, tp, pp, dp, moe_tp, moe_ep)
        refusal = _refusal(layout, backend, enable_wideep, moe_backend, attention_heads, total_gpus)
        if refusal:
            result.dropped.append(DroppedLayout(layout, *refusal))
        else:
            result.kept.append(layout)
    return result


def _refusal(
    layout: WorkerLayout,
    backend: str,
    enable_wideep: bool,
    moe_backend: str | None,
    attention_heads: int,
    total_gpus: int,
) -> tuple[str, str] | None:
    tp, dp, moe_tp, moe_ep = layout.tp, layout.dp, layout.moe_tp, layout.moe_ep
    if backend == "trtllm" and tp > 1 and dp > 1:
        return RULE_TRTLLM, f"trtllm cannot combine attention tp {tp} with attention dp {dp}"
    if backend == "vllm" and moe_tp > 1 and moe_ep > 1:
        return RULE_VLLM, f"vllm cannot combine moe_tp {moe_tp} with moe_ep {moe_ep}"
    if backend == "sglang" and (enable_wideep or moe_backend == "deepep_moe") and moe_tp > 1:
        return RULE_SGLANG, f"sglang wide EP shards experts by EP only, found moe_tp {moe_tp}"
    if attention_heads % tp:
        return RULE_HEADS, f"{attention_heads} attention heads are not divisible by tp {tp}"
    if layout.gpus > total_gpus:
        return RULE_BUDGET, f"the worker needs {layout.gpus} GPUs > total_gpus {total_gpus}"
    return None


@dataclass(frozen=True)
class ReplicaShape:
    """x prefill workers and y decode workers forming one replica (xPyD)."""

    prefill: WorkerLayout
    decode: WorkerLayout
    prefill_workers: int
    decode_workers: int
    total_gpus: int

    @property
    def gpus_per_replica(self) -> int:
        return self.prefill_workers * self.prefill.gpus + self.decode_workers * self.decode.gpus

    @property
    def replicas(self) -> int:
        return self.total_gpus // self.gpus_per_replica


def replica_gpu_counts(replica: ReplicaConfig, total_gpus: int) -> list[int]:
    """``num_gpu_per_replica`` capped by ``max_gpu_per_replica`` (0 = no cap) and ``total_gpus``."""
    cap = replica.max_gpu_per_replica or total_gpus
    return sorted({n for n in replica.num_gpu_per_replica if n <= cap and n <= total_gpus})


def enumerate_replicas(
    prefill: list[WorkerLayout],
    decode: list[WorkerLayout],
    replica: ReplicaConfig,
    total_gpus: int,
) -> list[ReplicaShape]:
    """Every (prefill layout, decode layout, x, y) with ``x·p + y·d`` an allowed replica size."""
    sizes = replica_gpu_counts(replica, total_gpus)
    if not sizes:
        return []
    shapes = []
    for p_layout in prefill:
        p = p_layout.gpus
        for d_layout in decode:
            d = d_layout.gpus
            for x in range(1, replica.max_prefill_worker + 1):
                if x * p + d > sizes[-1]:
                    break
                for size in sizes:
                    rest = size - x * p
                    if rest <= 0 or rest % d:
                        continue
                    y = rest // d
                    if y <= replica.max_decode_worker:
                        shapes.append(ReplicaShape(p_layout, d_layout, x, y, total_gpus))
    return shapes
