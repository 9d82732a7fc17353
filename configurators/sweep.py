"""Per-layout figures of an experiment: weights, KV capacity, P→D transfer, ranking.

For every enumerated layout: weights per GPU from the parameter count and the
quant modes, the KV bytes each GPU holds per token (``registry.kv_geometry``), how
many tokens and concurrent sequences fit in what is left, and for disaggregated
replicas the bytes one request moves from prefill to decode, the time that takes on
the link between them, and the nixlbench plan that measures it.

Ranking objective (documented in docs/experiments.md): concurrent sequences per
GPU, descending; then P→D transfer time, ascending; then fewer GPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any

from configurators.experiments import Experiment, WorkerConfig
from configurators.layouts import (
    RULE_KV,
    RULE_WEIGHTS,
    DroppedLayout,
    Enumeration,
    ReplicaShape,
    WorkerLayout,
    enumerate_replicas,
    enumerate_worker_layouts,
    replica_gpu_counts,
)
from configurators.systems import GIB, System, get_system
from registry.errors import ModelRegError
from registry.kv_geometry import kv_geometry, split_layers
from registry.param_count import ParamCount, count_parameters

# Fraction of each GPU's memory kept for activations, CUDA graphs, the runtime and
# fragmentation; weights and KV share the rest (vLLM's default gpu_memory_utilization
# is 0.9 for the same reason).
RUNTIME_RESERVE = 0.10
GEMM_BYTES = {"fp8": 1.0, "fp8_static": 1.0, "fp8_block": 1.0, "float16": 2.0, "bfloat16": 2.0}
MOE_BYTES = {"fp8": 1.0, "fp8_block": 1.0, "w4afp8": 0.5, "float16": 2.0, "bfloat16": 2.0}
KV_DTYPES = {"fp8": "fp8", "int8": "int8", "float16": "fp16", "bfloat16": "bf16"}
UNQUANTIZED_BYTES = 2.0  # embeddings, output head and norms stay 16-bit
# The P→D nixlbench plan: block access with vLLM's default 16-token pages, GPU memory to
# GPU memory over UCX, one prefill batch (prefill_max_batch_size requests) per transfer.
PAGE_SIZE = 16
NIXLBENCH_BACKEND = "UCX"


@dataclass(frozen=True)
class LayoutFigures:
    """What one worker layout holds per GPU and how many sequences it serves."""

    layout: WorkerLayout
    system: str
    weights_bytes_per_gpu: int
    usable_bytes_per_gpu: int
    kv_bytes_per_token_per_gpu: int
    tokens_per_gpu: int
    sequence_tokens: int
    concurrent_sequences: int
    replicas: int = 0

    @property
    def free_bytes_per_gpu(self) -> int:
        return self.usable_bytes_per_gpu - self.weights_bytes_per_gpu

    @property
    def sequences_per_gpu(self) -> float:
        return self.concurrent_sequences / self.layout.gpus

    def to_dict(self) -> dict[str, Any]:
        out = {
            **self.layout.to_dict(),
            "system": self.system,
            "weights_gib_per_gpu": round(self.weights_bytes_per_gpu / GIB, 3),
            "free_gib_per_gpu": round(self.free_bytes_per_gpu / GIB, 3),
            "kv_bytes_per_token_per_gpu": self.kv_bytes_per_token_per_gpu,
            "tokens_per_gpu": self.tokens_per_gpu,
            "sequence_tokens": self.sequence_tokens,
            "concurrent_sequences": self.concurrent_sequences,
            "sequences_per_gpu": round(self.sequences_per_gpu, 3),
        }
        if self.layout.role == "agg":
            out["replicas"] = self.replicas
        return out


@dataclass(frozen=True)
class ReplicaFigures:
    """One xPyD replica and the KV transfer of one request from prefill to decode."""

    shape: ReplicaShape
    prefill: LayoutFigures
    decode: LayoutFigures
    bytes_per_request: int
    send_bytes_per_gpu: int
    receive_bytes_per_gpu: int
    link: str
    link_gbps: float
    nixlbench: dict[str, Any] | None = None

    @property
    def transfer_ms(self) -> float:
        """The busiest GPU link: max(bytes one prefill GPU sends, bytes one decode GPU receives)."""
        return max(self.send_bytes_per_gpu, self.receive_bytes_per_gpu) / (self.link_gbps * 1e9) * 1e3

    @property
    def concurrent_sequences(self) -> int:
        return self.shape.decode_workers * self.decode.concurrent_sequences

    @property
    def sequences_per_gpu(self) -> float:
        return self.concurrent_sequences / self.shape.gpus_per_replica

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefill_workers": self.shape.prefill_workers,
            "decode_workers": self.shape.decode_workers,
            "prefill_layout": self.shape.prefill.to_dict(),
            "decode_layout": self.shape.decode.to_dict(),
            "gpus_per_replica": self.shape.gpus_per_replica,
            "replicas": self.shape.replicas,
            "concurrent_sequences": self.concurrent_sequences,
            "sequences_per_gpu": round(self.sequences_per_gpu, 3),
            "bytes_per_request": self.bytes_per_request,
            "send_bytes_per_gpu": self.send_bytes_per_gpu,
            "receive_bytes_per_gpu": self.receive_bytes_per_gpu,
            "link": self.link,
            "link_gbps": self.link_gbps,
            "transfer_ms": round(self.transfer_ms, 4),
            "nixlbench": self.nixlbench,
        }


@dataclass
class ExperimentResult:
    """Everything ``modelreg sweep`` reports about one experiment."""

    experiment: Experiment
    model: str
    model_origin: str
    params: ParamCount
    nextn: int
    layouts: list[LayoutFigures] = field(default_factory=list)
    dropped: list[DroppedLayout] = field(default_factory=list)
    filtered: dict[str, dict[str, int]] = field(default_factory=dict)
    candidates: int = 0
    replicas: list[ReplicaFigures] = field(default_factory=list)
    replica_sizes: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        exp = self.experiment
        return {
            "name": exp.name,
            "serving_mode": exp.serving_mode,
            "model": self.model,
            "system": exp.system_name,
            "decode_system": exp.decode_system_name if exp.serving_mode == "disagg" else None,
            "backend": exp.backend_name,
            "isl": exp.isl,
            "osl": exp.osl,
            "nextn": self.nextn,
            "params": self.params.to_dict(),
            "candidates": self.candidates,
            "filtered": self.filtered,
            "layouts": [figures.to_dict() for figures in self.layouts],
            "dropped": [drop.to_dict() for drop in self.dropped],
            "replicas": [replica.to_dict() for replica in self.replicas],
        }


class ModelPlan:
    """The model-side arithmetic of one experiment, cached per (tp, pp, quant) shape.

    Thousands of layouts share a handful of distinct (tp, pp) pairs, so geometry
    and per-stage weight sums are computed once per pair.
    """

    def __init__(self, config: dict[str, Any], nextn: int):
        self.params = count_parameters(config)
        self.mtp = self.params.mtp_layers if nextn > 0 else ()
        self.config = _kv_config(config, len(self.mtp))
        self.heads = _attention_heads(config)
        layers = self.params.layers
        self._dense = [0, *accumulate(layer.attention + layer.mlp for layer in layers)]
        self._experts = [0, *accumulate(layer.experts for layer in layers)]
        self._norms = [0, *accumulate(layer.norms for layer in layers)]
        self._geometry: dict[tuple[int, int, str], Any] = {}
        self._weights: dict[tuple[int, ...] | tuple[Any, ...], int] = {}

    def geometry(self, tp: int, pp: int, kv_dtype: str) -> Any:
        key = (tp, pp, kv_dtype)
        if key not in self._geometry:
            self._geometry[key] = kv_geometry(self.config, tp_size=tp, pp_size=pp, kv_dtype=kv_dtype)
        return self._geometry[key]

    def weights_per_gpu(self, layout: WorkerLayout, worker: WorkerConfig) -> int:
        """Bytes of weights on the busiest pipeline stage's GPUs."""
        key = (
            layout.tp,
            layout.pp,
            layout.moe_tp * layout.moe_ep,
            worker.gemm_quant_mode,
            worker.moe_quant_mode,
        )
        if key not in self._weights:
            self._weights[key] = self._stage_weights(layout.tp, layout.pp, key[2], worker)
        return self._weights[key]

    def _stage_weights(self, tp: int, pp: int, expert_shards: int, worker: WorkerConfig) -> int:
        gemm = GEMM_BYTES[worker.gemm_quant_mode]
        moe = MOE_BYTES[worker.moe_quant_mode]
        params = self.params
        busiest = 0.0
        start = 0
        stages = split_layers(len(params.layers), pp)
        for index, count in enumerate(stages):
            end = start + count
            total = (self._dense[end] - self._dense[start]) * gemm / tp
            total += (self._experts[end] - self._experts[start]) * moe / expert_shards
            total += (self._norms[end] - self._norms[start]) * UNQUANTIZED_BYTES
            if index == 0:
                total += params.embedding * UNQUANTIZED_BYTES / tp
            if index == len(stages) - 1:
                total += (params.lm_head / tp + params.final_norm) * UNQUANTIZED_BYTES
                for mtp in self.mtp:
                    total += mtp.attention * gemm / tp + mtp.mlp * gemm / tp
                    total += mtp.experts * moe / expert_shards + mtp.norms * UNQUANTIZED_BYTES
            busiest = max(busiest, total)
            start = end
        return math.ceil(busiest)


def _kv_config(config: dict[str, Any], mtp_layers: int) -> dict[str, Any]:
    """The config the KV geometry sees: MTP layers hold KV too when speculative decoding is on."""
    if not mtp_layers:
        return config
    out = dict(config)
    out["num_hidden_layers"] = int(config["num_hidden_layers"]) + mtp_layers
    out["num_nextn_predict_layers"] = 0
    return out


def _attention_heads(config: dict[str, Any]) -> int:
    text = config.get("text_config") or config
    return int(text.get("num_attention_heads") or text.get("n_head") or 1)


def effective_nextn(experiment: Experiment, config: dict[str, Any]) -> int:
    """``nextn`` as given, else 1 for models that ship an MTP head and 0 otherwise."""
    if experiment.nextn is not None:
        return experiment.nextn
    text = config.get("text_config") or config
    return 1 if int(text.get("num_nextn_predict_layers") or 0) > 0 else 0


def resolve_model(experiment: Experiment) -> tuple[dict[str, Any], str, str]:
    """(config dict, model name, origin); a model that cannot be resolved names its line."""
    from registry.hf_config import load_config_dict

    try:
        source = load_config_dict(experiment.model_path)
    except ModelRegError as error:
        raise experiment.error(str(error), "model_path") from None
    return source.data, source.model_id or experiment.model_path, source.origin


def sweep_experiment(experiment: Experiment, config: dict[str, Any] | None = None) -> ExperimentResult:
    """Enumerate, size and rank every layout of one experiment."""
    if config is None:
        config, model, origin = resolve_model(experiment)
    else:
        model, origin = experiment.model_path, "given"
    nextn = effective_nextn(experiment, config)
    try:
        plan = ModelPlan(config, nextn)
    except ModelRegError as error:
        raise experiment.error(str(error), "model_path") from None
    result = ExperimentResult(experiment, model, origin, plan.params, nextn)
    prefill_system = get_system(experiment.system_name)
    decode_system = get_system(experiment.decode_system_name)
    tokens = experiment.isl + experiment.osl

    if experiment.serving_mode == "agg":
        worker = experiment.worker_config
        kept = _role(result, plan, experiment, worker, "agg", prefill_system, tokens)
        for figures in kept:
            result.layouts.append(_with_replicas(figures, experiment.total_gpus // figures.layout.gpus))
        result.layouts.sort(key=_layout_rank)
        return result

    prefill = _role(
        result, plan, experiment, experiment.prefill_worker_config, "prefill", prefill_system, experiment.isl
    )
    decode = _role(result, plan, experiment, experiment.decode_worker_config, "decode", decode_system, tokens)
    prefill.sort(key=_layout_rank)
    decode.sort(key=_layout_rank)
    result.layouts = prefill + decode
    by_layout = {figures.layout: figures for figures in result.layouts}
    replica = experiment.replica_config
    result.replica_sizes = replica_gpu_counts(replica, experiment.total_gpus)
    shapes = enumerate_replicas(
        [f.layout for f in prefill], [f.layout for f in decode], replica, experiment.total_gpus
    )
    plans: dict[WorkerLayout, dict[str, Any] | None] = {}
    for shape in shapes:
        p_fig, d_fig = by_layout[shape.prefill], by_layout[shape.decode]
        if shape.prefill not in plans:
            plans[shape.prefill] = _nixlbench_plan(plan, experiment, shape.prefill)
        result.replicas.append(
            _replica_figures(plan, experiment, shape, p_fig, d_fig, prefill_system, decode_system, plans)
        )
    result.replicas.sort(key=_replica_rank)
    return result


def _role(
    result: ExperimentResult,
    plan: ModelPlan,
    experiment: Experiment,
    worker: WorkerConfig,
    role: str,
    system: System,
    sequence_tokens: int,
) -> list[LayoutFigures]:
    enumeration: Enumeration = enumerate_worker_layouts(
        worker,
        role=role,
        is_moe=plan.params.is_moe,
        backend=experiment.backend_name,
        attention_heads=plan.heads,
        total_gpus=experiment.total_gpus,
        enable_wideep=experiment.enable_wideep,
        moe_backend=experiment.moe_backend,
    )
    result.candidates += enumeration.candidates
    result.filtered[role] = dict(enumeration.filtered)
    result.dropped.extend(enumeration.dropped)
    kept = []
    kv_dtype = KV_DTYPES[worker.kvcache_quant_mode]
    usable = int(system.memory_bytes * (1 - RUNTIME_RESERVE))
    for layout in enumeration.kept:
        figures, drop = size_layout(plan, layout, worker, system, usable, kv_dtype, sequence_tokens)
        if drop:
            result.dropped.append(drop)
        else:
            kept.append(figures)
    return kept


def size_layout(
    plan: ModelPlan,
    layout: WorkerLayout,
    worker: WorkerConfig,
    system: System,
    usable: int,
    kv_dtype: str,
    sequence_tokens: int,
) -> tuple[LayoutFigures | None, DroppedLayout | None]:
    """Memory figures of one layout, or the reason it cannot run."""
    weights = plan.weights_per_gpu(layout, worker)
    if weights > usable:
        return None, DroppedLayout(
            layout,
            RULE_WEIGHTS,
            f"weights {weights / GIB:.1f} GiB > memory {usable / GIB:.1f} GiB per GPU ({system.name}: "
            f"{system.memory_bytes / GIB:.1f} GiB less the {RUNTIME_RESERVE:.0%} runtime reserve)",
        )
    geometry = plan.geometry(layout.tp, layout.pp, kv_dtype)
    free = usable - weights
    per_token = int(geometry.kv_bytes_per_token_per_gpu)
    per_sequence = int(geometry.kv_bytes_per_gpu(sequence_tokens))
    tokens = free // per_token if per_token else 0
    sequences = free // per_sequence if per_sequence else 0
    if sequences == 0:
        return None, DroppedLayout(
            layout,
            RULE_KV,
            f"KV of one {sequence_tokens}-token sequence {per_sequence / GIB:.2f} GiB > "
            f"free memory {free / GIB:.2f} GiB per GPU after weights",
        )
    # Attention-DP ranks each hold their own sequences.
    return LayoutFigures(
        layout, system.name, weights, usable, per_token, tokens, sequence_tokens, sequences * layout.dp
    ), None


def _with_replicas(figures: LayoutFigures, replicas: int) -> LayoutFigures:
    return replace(figures, replicas=replicas)


def _nixlbench_plan(plan: ModelPlan, experiment: Experiment, layout: WorkerLayout) -> dict[str, Any]:
    """The nixlbench run that measures this prefill layout's KV hand-off."""
    from configurators.nixlbench import nixlbench_args
    from configurators.transfer import plan_transfer
    from registry.model_config import TransferSpec

    kv_dtype = KV_DTYPES[experiment.prefill_worker_config.kvcache_quant_mode]
    spec = TransferSpec(
        tp_size=layout.tp,
        pp_size=layout.pp,
        kvcache_quant_mode=kv_dtype,
        isl=experiment.isl,
        osl=experiment.osl,
        num_requests=experiment.advanced_tuning_config.prefill_max_batch_size,
        access_pattern="block",
        page_size=PAGE_SIZE,
    )
    transfer = plan_transfer(plan.geometry(layout.tp, layout.pp, kv_dtype), spec)
    args = nixlbench_args(transfer, backend=NIXLBENCH_BACKEND, source="gpu", destination="gpu")
    return {
        "io_size": transfer.io_size,
        "batch_size": transfer.batch_size,
        "argv": args.argv(),
    }


def _replica_figures(
    plan: ModelPlan,
    experiment: Experiment,
    shape: ReplicaShape,
    p_fig: LayoutFigures,
    d_fig: LayoutFigures,
    prefill_system: System,
    decode_system: System,
    plans: dict[WorkerLayout, dict[str, Any] | None],
) -> ReplicaFigures:
    p, d = shape.prefill, shape.decode
    p_kv = KV_DTYPES[experiment.prefill_worker_config.kvcache_quant_mode]
    d_kv = KV_DTYPES[experiment.decode_worker_config.kvcache_quant_mode]
    moved = int(plan.geometry(p.tp, p.pp, p_kv).kv_bytes_model(experiment.isl))
    receive = int(plan.geometry(d.tp, d.pp, d_kv).kv_bytes_per_gpu(experiment.isl))
    send = math.ceil(moved / (p.tp * p.pp))
    link, gbps = transfer_link(prefill_system, decode_system, shape.gpus_per_replica)
    return ReplicaFigures(shape, p_fig, d_fig, moved, send, receive, link, gbps, plans[p])


def transfer_link(prefill: System, decode: System, gpus_per_replica: int) -> tuple[str, float]:
    """The link a P→D transfer crosses: NVLink when the replica fits one NVLink domain.

    Different systems are different machines, so heterogeneous replicas always go
    inter-node at the slower side's bandwidth.
    """
    if prefill.name != decode.name:
        return "inter-node", min(prefill.inter_node_gbps, decode.inter_node_gbps)
    if gpus_per_replica <= prefill.nvlink_domain:
        return "nvlink", prefill.nvlink_gbps
    return "inter-node", prefill.inter_node_gbps


def _layout_rank(figures: LayoutFigures) -> tuple:
    layout = figures.layout
    return (
        -figures.sequences_per_gpu,
        layout.gpus,
        layout.tp,
        layout.pp,
        layout.dp,
        layout.moe_tp,
        layout.moe_ep,
    )


def _replica_rank(replica: ReplicaFigures) -> tuple:
    shape = replica.shape
    return (
        -replica.sequences_per_gpu,
        replica.transfer_ms,
        shape.gpus_per_replica,
        shape.prefill_workers,
        _layout_rank(replica.prefill)[1:],
        _layout_rank(replica.decode)[1:],
    )


def sweep(experiments: list[Experiment] | tuple[Experiment, ...]) -> list[ExperimentResult]:
    return [sweep_experiment(experiment) for experiment in experiments]


def sweep_document(results: list[ExperimentResult]) -> dict[str, Any]:
    """The JSON structure of ``modelreg sweep --format json``."""
    return {"experiments": [result.to_dict() for result in results]}
