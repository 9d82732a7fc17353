"""Worker-layout and replica enumeration: exact candidate lists for hand-worked cases."""

from __future__ import annotations

from configurators.experiments import ReplicaConfig, WorkerConfig
from configurators.layouts import (
    RULE_BUDGET,
    RULE_GPUS,
    RULE_HEADS,
    RULE_SGLANG,
    RULE_TRTLLM,
    RULE_VLLM,
    RULE_WIDTH,
    enumerate_replicas,
    enumerate_worker_layouts,
    replica_gpu_counts,
)


def worker(**lists) -> WorkerConfig:
    base = dict(
        gemm_quant_mode="fp8_block",
        moe_quant_mode="fp8_block",
        kvcache_quant_mode="fp8",
        fmha_quant_mode="float16",
        comm_quant_mode="half",
        num_gpu_per_worker=(4, 8),
        tp_list=(1, 2, 4, 8),
        pp_list=(1,),
        dp_list=(1, 2, 4, 8),
        moe_tp_list=(1,),
        moe_ep_list=(1, 2, 4, 8),
    )
    base.update(lists)
    return WorkerConfig(**base)


def shapes(layouts):
    return [(x.tp, x.pp, x.dp, x.moe_tp, x.moe_ep) for x in layouts]


def test_moe_trtllm_hand_worked():
    # 4 tp × 1 pp × 4 dp × 1 moe_tp × 4 moe_ep = 64 combinations.
    # tp·dp == moe_ep needs tp·dp ∈ {1,2,4,8}:
    #   (1,1)(1,2)(1,4)(1,8)(2,1)(2,2)(2,4)(4,1)(4,2)(8,1) = 10 → 54 filtered.
    # gpus = tp·dp ∈ {4, 8} removes (1,1)(1,2)(2,1) → 3 filtered; 7 left.
    # trtllm drops tp>1 with dp>1: (2,2)(2,4)(4,2) → 4 kept.
    result = enumerate_worker_layouts(
        worker(), role="agg", is_moe=True, backend="trtllm", attention_heads=128, total_gpus=64
    )
    assert result.filtered == {RULE_WIDTH: 54, RULE_GPUS: 3}
    assert shapes(result.kept) == [(1, 1, 4, 1, 4), (1, 1, 8, 1, 8), (4, 1, 1, 1, 4), (8, 1, 1, 1, 8)]
    assert [(d.layout.tp, d.layout.dp, d.rule) for d in result.dropped] == [
        (2, 2, RULE_TRTLLM),
        (2, 4, RULE_TRTLLM),
        (4, 2, RULE_TRTLLM),
    ]
    assert result.candidates == 64


def test_vllm_keeps_attention_tp_with_dp_but_not_moe_tp_with_ep():
    # Same space as above: vLLM allows tp>1 with dp>1, so all 7 survive.
    result = enumerate_worker_layouts(
        worker(), role="agg", is_moe=True, backend="vllm", attention_heads=128, total_gpus=64
    )
    assert len(result.kept) == 7 and not result.dropped
    # moe_tp 2 × moe_ep 2 = 4 = tp 4: refused by vLLM's rule.
    mixed = enumerate_worker_layouts(
        worker(tp_list=(4,), dp_list=(1,), moe_tp_list=(2,), moe_ep_list=(2,), num_gpu_per_worker=(4,)),
        role="decode",
        is_moe=True,
        backend="vllm",
        attention_heads=128,
        total_gpus=8,
    )
    assert [d.rule for d in mixed.dropped] == [RULE_VLLM]


def test_sglang_wide_ep_keeps_moe_tp_one_only():
    space = worker(
        tp_list=(4,), dp_list=(1,), moe_tp_list=(1, 2), moe_ep_list=(2, 4), num_gpu_per_worker=(4,)
    )
    wide = enumerate_worker_layouts(
        space,
        role="agg",
        is_moe=True,
        backend="sglang",
        attention_heads=128,
        total_gpus=8,
        enable_wideep=True,
    )
    # tp 4 = moe_tp·moe_ep: (1,4) kept, (2,2) dropped by the wide-EP rule.
    assert shapes(wide.kept) == [(4, 1, 1, 1, 4)]
    assert [d.rule for d in wide.dropped] == [RULE_SGLANG]
    narrow = enumerate_worker_layouts(
        space, role="agg", is_moe=True, backend="sglang", attention_heads=128, total_gpus=8
    )
    assert len(narrow.kept) == 2


def test_dense_models_use_tp_times_pp_and_ignore_moe_lists():
    # (tp, pp) over tp 1,2,4,8 × pp 1,2 = 8; tp·pp ∈ {2,4,8}: drops (1,1)=1 and (8,2)=16 → 6 kept.
    result = enumerate_worker_layouts(
        worker(num_gpu_per_worker=(2, 4, 8), pp_list=(1, 2)),
        role="agg",
        is_moe=False,
        backend="trtllm",
        attention_heads=64,
        total_gpus=16,
    )
    assert shapes(result.kept) == [
        (1, 2, 1, 1, 1),
        (2, 1, 1, 1, 1),
        (2, 2, 1, 1, 1),
        (4, 1, 1, 1, 1),
        (4, 2, 1, 1, 1),
        (8, 1, 1, 1, 1),
    ]
    assert result.filtered == {RULE_GPUS: 2}


def test_heads_and_gpu_budget_rules_give_reasons():
    result = enumerate_worker_layouts(
        worker(num_gpu_per_worker=(1, 2, 4, 8), pp_list=(1,)),
        role="agg",
        is_moe=False,
        backend="vllm",
        attention_heads=12,
        total_gpus=4,
    )
    reasons = {d.layout.tp: (d.rule, d.reason) for d in result.dropped}
    assert reasons[8] == (RULE_HEADS, "12 attention heads are not divisible by tp 8")
    assert shapes(result.kept) == [(1, 1, 1, 1, 1), (2, 1, 1, 1, 1), (4, 1, 1, 1, 1)]
    budget = enumerate_worker_layouts(
        worker(num_gpu_per_worker=(8,), tp_list=(8,)),
        role="agg",
        is_moe=False,
        backend="vllm",
        attention_heads=64,
        total_gpus=4,
    )
    assert [(d.rule, d.reason) for d in budget.dropped] == [
        (RULE_BUDGET, "the worker needs 8 GPUs > total_gpus 4")
    ]


def test_replica_sizes_capped_by_max_and_total():
    replica = ReplicaConfig(
        (8, 16, 24, 32), max_gpu_per_replica=24, max_prefill_worker=32, max_decode_worker=32
    )
    assert replica_gpu_counts(replica, total_gpus=64) == [8, 16, 24]
    assert replica_gpu_counts(replica, total_gpus=16) == [8, 16]
    unlimited = ReplicaConfig((8, 128), max_gpu_per_replica=0, max_prefill_worker=1, max_decode_worker=1)
    assert replica_gpu_counts(unlimited, total_gpus=128) == [8, 128]


def test_replicas_xpyd_hand_worked():
    # prefill workers of 2 GPUs (tp2), decode workers of 4 GPUs (tp4); sizes 8 and 16 within 16 GPUs.
    # 2x + 4y = 8  → (x=2, y=1);   2x + 4y = 16 → (6,1) (4,2) (2,3); max_prefill_worker 4 drops (6,1).
    prefill = enumerate_worker_layouts(
        worker(num_gpu_per_worker=(2,), tp_list=(2,)),
        role="prefill",
        is_moe=False,
        backend="vllm",
        attention_heads=64,
        total_gpus=16,
    ).kept
    decode = enumerate_worker_layouts(
        worker(num_gpu_per_worker=(4,), tp_list=(4,)),
        role="decode",
        is_moe=False,
        backend="vllm",
        attention_heads=64,
        total_gpus=16,
    ).kept
    replica = ReplicaConfig((8, 16), max_gpu_per_replica=128, max_prefill_worker=4, max_decode_worker=32)
    found = enumerate_replicas(prefill, decode, replica, total_gpus=16)
    assert sorted((s.prefill_workers, s.decode_workers, s.gpus_per_replica, s.replicas) for s in found) == [
        (2, 1, 8, 2),
        (2, 3, 16, 1),
        (4, 2, 16, 1),
    ]
