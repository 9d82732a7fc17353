"""Per-layout figures checked against hand arithmetic: weights, KV capacity, P→D transfer, ranking."""

from __future__ import annotations

import textwrap

import pytest

from configurators.experiments import load_experiments
from configurators.layouts import RULE_WEIGHTS
from configurators.sweep import sweep_experiment, transfer_link
from configurators.systems import get_system

R1_DISAGG = """\
r1:
  mode: patch
  serving_mode: disagg
  model_path: deepseek-ai/DeepSeek-R1
  total_gpus: 16
  system_name: h200_sxm
  config:
    nextn: 0
    prefill_worker_config:
      {kvcache_quant_mode: fp8, num_gpu_per_worker: [8], tp_list: [8], dp_list: [1], moe_ep_list: [8]}
    decode_worker_config:
      {kvcache_quant_mode: fp8, num_gpu_per_worker: [8], tp_list: [1], dp_list: [8], moe_ep_list: [8]}
    replica_config: {num_gpu_per_replica: [16]}
"""

LLAMA_AGG = """\
l70:
  mode: patch
  serving_mode: agg
  model_path: meta-llama/Llama-3.1-70B
  total_gpus: 16
  system_name: h100_sxm
  backend_name: vllm
  isl: 8000
  osl: 1000
  config:
    worker_config: {gemm_quant_mode: float16, num_gpu_per_worker: [1, 8], tp_list: [1, 8], pp_list: [1]}
"""


def experiment(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(text))
    return load_experiments(path).experiments[0]


def test_llama_70b_agg_figures(tmp_path, offline_hf):
    result = sweep_experiment(experiment(tmp_path, LLAMA_AGG))
    (tp8,) = result.layouts
    # weights tp8 (float16): layers 80·(150,994,944 + 704,643,072)·2/8 = 17,112,760,320
    #   + norms 80·16,384·2 = 2,621,440 + (embedding + head) 2·1,050,673,152·2/8 = 525,336,576 + final 16,384
    assert tp8.weights_bytes_per_gpu == 17_640_734_720
    # usable 80e9·0.9 = 72e9; free = 54,359,265,280
    # KV/token/GPU: 80 layers · (8 KV heads / 8) · 2 · 128 · 2 B = 40,960
    assert tp8.kv_bytes_per_token_per_gpu == 40_960
    assert tp8.tokens_per_gpu == 54_359_265_280 // 40_960 == 1_327_130
    # sequences of 9000 tokens: 54,359,265,280 // (40,960·9000) = 147
    assert tp8.concurrent_sequences == 147
    assert tp8.replicas == 2
    # tp1: 141 GB of 16-bit weights on one 80 GB GPU
    (dropped,) = result.dropped
    assert dropped.rule == RULE_WEIGHTS and dropped.layout.tp == 1
    assert dropped.reason.startswith("weights 131.4 GiB > memory 67.1 GiB per GPU")


def test_deepseek_r1_disagg_kv_and_transfer(tmp_path, offline_hf):
    result = sweep_experiment(experiment(tmp_path, R1_DISAGG))
    prefill, decode = result.layouts
    # MLA latent 512 + 64 = 576 B per token and layer (fp8), never divided by TP; 61 layers (nextn 0)
    assert prefill.kv_bytes_per_token_per_gpu == decode.kv_bytes_per_token_per_gpu == 61 * 576 == 35_136
    # decode tp1 dp8 ep8, fp8 weights: attention + dense MLPs + shared experts + routers unsharded
    #   61·187,107,328 + 3·396,361,728 + 58·(44,040,192 + 1,835,264) = 15,263,408,640
    #   routed experts 58·11,274,289,152 / 8 = 81,738,596,352; norms 61·14,336·2 = 1,748,992
    #   embedding + head 2·926,679,040·2 = 3,706,716,160; final norm 14,336 → 100,710,484,480
    assert decode.weights_bytes_per_gpu == 100_710_484_480
    # usable 141e9·0.9 = 126.9e9 → free 26,189,515,520; per 5000-token sequence 35,136·5000 = 175,680,000
    # → 149 per attention-DP rank, × 8 ranks
    assert decode.concurrent_sequences == 149 * 8
    (replica,) = result.replicas
    assert (replica.shape.prefill_workers, replica.shape.decode_workers, replica.shape.replicas) == (1, 1, 1)
    # one request's KV: 61 · 576 · 4000 = 140,544,000 B; the tp1 decode GPU receives all of it,
    # each of the 8 prefill GPUs sends an eighth (17,568,000 B)
    assert replica.bytes_per_request == 140_544_000
    assert replica.send_bytes_per_gpu == 17_568_000
    assert replica.receive_bytes_per_gpu == 140_544_000
    # 16 GPUs > one 8-GPU NVLink domain → inter-node, 50 GB/s: 140,544,000 / 50e9 s = 2.81088 ms
    assert replica.link == "inter-node"
    assert replica.transfer_ms == pytest.approx(2.81088)
    assert replica.nixlbench["argv"][0] == "nixlbench"


def test_mtp_layer_adds_kv_when_nextn_is_on(tmp_path, offline_hf):
    text = R1_DISAGG.replace("nextn: 0", "nextn: 1")
    result = sweep_experiment(experiment(tmp_path, text))
    assert result.nextn == 1
    assert result.layouts[0].kv_bytes_per_token_per_gpu == 62 * 576


def test_transfer_link_rules():
    h100, h200, gb200 = get_system("h100_sxm"), get_system("h200_sxm"), get_system("gb200_sxm")
    assert transfer_link(h100, h100, 8) == ("nvlink", 450.0)
    assert transfer_link(h100, h100, 16) == ("inter-node", 50.0)
    assert transfer_link(gb200, gb200, 64) == ("nvlink", 900.0)  # NVL72 rack is one NVLink domain
    assert transfer_link(h100, h200, 8)[0] == "inter-node"  # different machines


def test_ranking_prefers_sequences_per_gpu_then_transfer_then_fewer_gpus(tmp_path, offline_hf):
    result = sweep_experiment(
        experiment(
            tmp_path,
            "x:\n"
            + textwrap.indent(
                textwrap.dedent("""\
        mode: patch
        serving_mode: disagg
        model_path: meta-llama/Llama-3.1-8B
        total_gpus: 16
        system_name: h100_sxm
        config:
          prefill_worker_config: {num_gpu_per_worker: [1, 2], tp_list: [1, 2]}
          decode_worker_config: {num_gpu_per_worker: [1, 2], tp_list: [1, 2]}
          replica_config: {num_gpu_per_replica: [8, 16]}
        """),
                "  ",
            ),
        )
    )
    keys = [(-r.sequences_per_gpu, r.transfer_ms, r.shape.gpus_per_replica) for r in result.replicas]
    assert keys == sorted(keys)
    assert len(result.replicas) > 10
