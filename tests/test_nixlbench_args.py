"""nixlbench flags from a plan: defaults, backend families, argv, buffer sizing."""

from __future__ import annotations

import pytest
from conftest import hf_config_dict

from configurators.nixlbench import FLAG_NAMES, NixlbenchArgs, nixlbench_args, segment_settings
from configurators.transfer import plan_transfer
from registry.errors import UsageError
from registry.model_config import TransferSpec


def r1_plan(compat=None, **values):
    base = {"pp_size": 16, "kvcache_quant_mode": "fp8", "isl": 10_000, "num_requests": 10, "page_size": 256}
    return plan_transfer(
        hf_config_dict("deepseek-ai/DeepSeek-R1"), TransferSpec(**{**base, **values}), compat=compat
    )


def test_defaults_are_nixlbench_defaults():
    args = NixlbenchArgs()
    assert args.non_default() == {}
    assert args.argv() == ["nixlbench"]
    assert args.total_buffer_size == 8 * 1024**3
    assert (args.start_block_size, args.max_block_size) == (4096, 64 * 1024**2)
    assert (args.num_iter, args.warmup_iter, args.etcd_endpoints) == (1000, 100, "http://localhost:2379")
    assert list(FLAG_NAMES) == sorted(FLAG_NAMES)


def test_seed_gds_gpu_plan():
    args = nixlbench_args(r1_plan(), backend="GDS", source="gpu")
    # 4 × 576 × 256 = 589824 per IO; 5958 IOs; 589824 × 5958 ≈ 3.5 GB fits the default 8 GiB buffer.
    assert args.non_default() == {
        "backend": "GDS",
        "max_batch_size": 5958,
        "max_block_size": 589_824,
        "start_batch_size": 5958,
        "start_block_size": 589_824,
        "target_seg_type": "VRAM",
    }
    assert args.text() == (
        "nixlbench \\\n    --backend GDS \\\n    --max_batch_size 5958 \\\n    --max_block_size 589824 \\\n"
        "    --start_batch_size 5958 \\\n    --start_block_size 589824 \\\n    --target_seg_type VRAM"
    )
    assert args.argv("/opt/nixlbench") == [
        "/opt/nixlbench",
        "--backend=GDS",
        "--max_batch_size=5958",
        "--max_block_size=589824",
        "--start_batch_size=5958",
        "--start_block_size=589824",
        "--target_seg_type=VRAM",
    ]


def test_buffer_grows_to_hold_the_batch_except_in_kvbench_mode():
    # PP 32, 100 requests: 294912 × 119141 = 35,136,110,592 B > 8 GiB.
    exact = nixlbench_args(r1_plan(pp_size=32, num_requests=100), backend="GDS", source="gpu")
    assert exact.total_buffer_size == 294_912 * 119_141 == 35_136_110_592
    kvbench = nixlbench_args(r1_plan("kvbench", pp_size=32, num_requests=100), backend="GDS", source="gpu")
    assert "total_buffer_size" not in kvbench.non_default()
    explicit = nixlbench_args(r1_plan(), total_buffer_size=1 << 30)
    assert explicit.total_buffer_size == 1 << 30


@pytest.mark.parametrize(
    ("backend", "source", "destination", "expected"),
    [
        ("UCX", None, None, {"initiator_seg_type": "DRAM", "target_seg_type": "DRAM"}),
        ("UCX", "gpu", "gpu", {"initiator_seg_type": "VRAM", "target_seg_type": "VRAM"}),
        ("UCX_MO", "memory", "gpu", {"initiator_seg_type": "DRAM", "target_seg_type": "VRAM"}),
        ("Mooncake", "gpu", "memory", {"initiator_seg_type": "VRAM", "target_seg_type": "DRAM"}),
        ("GDS", "gpu", None, {"op_type": "WRITE", "target_seg_type": "VRAM"}),
        ("GDS", "file", None, {"op_type": "READ", "target_seg_type": "VRAM"}),
        ("GDS_MT", "file", "memory", {"op_type": "READ", "target_seg_type": "DRAM"}),
        (
            "GDS",
            "memory",
            "file",
            {"op_type": "WRITE", "initiator_seg_type": "DRAM", "target_seg_type": "DRAM"},
        ),
        ("POSIX", None, None, {"op_type": "READ", "target_seg_type": "DRAM"}),
        (
            "HF3FS",
            "memory",
            None,
            {"op_type": "WRITE", "initiator_seg_type": "DRAM", "target_seg_type": "DRAM"},
        ),
        ("OBJ", "gpu", None, {"op_type": "WRITE", "initiator_seg_type": "VRAM"}),
        ("OBJ", "file", "memory", {"op_type": "READ", "initiator_seg_type": "DRAM"}),
    ],
)
def test_segment_settings_per_family(backend, source, destination, expected):
    assert segment_settings(backend, source, destination) == expected


@pytest.mark.parametrize(
    ("backend", "source", "destination", "message"),
    [
        ("UCX", "file", "memory", "moves data between memory segments"),
        ("GDS", "file", "file", "cannot copy a file to a file"),
        ("GDS", "gpu", "memory", "--source or --destination must be file, found gpu → memory"),
        ("POSIX", "gpu", None, "--source gpu needs GDS"),
        ("POSIX", "file", "gpu", "--destination gpu needs GDS"),
        ("OBJ", "memory", "gpu", "are both local"),
        ("RDMA", "memory", "memory", "--backend must be one of"),
        ("UCX", "disk", "memory", "--source must be one of file, memory, gpu"),
    ],
)
def test_impossible_pairs_are_usage_errors(backend, source, destination, message):
    with pytest.raises(UsageError, match=message):
        segment_settings(backend, source, destination)


def test_scheme_tp_sets_device_counts():
    plan = r1_plan(tp_size=8, pp_size=1, num_requests=1, isl=256)
    args = nixlbench_args(plan, scheme="tp")
    assert (args.scheme, args.num_initiator_dev, args.num_target_dev) == ("tp", 1, 8)
    # Explicit device counts still win.
    assert nixlbench_args(plan, scheme="tp", num_target_dev=2).num_target_dev == 2
    with pytest.raises(UsageError, match="--scheme must be one of"):
        nixlbench_args(plan, scheme="ring")


def test_overrides_and_unknown_flags():
    args = nixlbench_args(
        r1_plan(), num_iter=10, check_consistency=True, etcd_endpoints="http://127.0.0.1:2379"
    )
    assert args.non_default()["num_iter"] == 10
    assert "--check_consistency=true" in args.argv()
    assert "    --check_consistency \\" in args.text()
    with pytest.raises(UsageError, match="unknown nixlbench flag"):
        nixlbench_args(r1_plan(), bogus=1)


def test_to_dict_lists_every_flag():
    assert set(NixlbenchArgs().to_dict()) == set(FLAG_NAMES)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"num_threads": -1}, "--num_threads expects a positive integer, found -1"),
        ({"num_iter": 0}, "--num_iter expects a positive integer, found 0"),
        ({"total_buffer_size": "8G"}, "--total_buffer_size expects a positive integer, found '8G'"),
        ({"warmup_iter": -1}, "--warmup_iter expects a non-negative integer, found -1"),
        ({"check_consistency": "yes"}, "--check_consistency expects true or false, found 'yes'"),
        ({"device_list": 3}, "--device_list expects a string, found 3"),
        (
            {"etcd_endpoints": "localhost"},
            "--etcd-endpoints: expected http://HOST:PORT (comma-separated for several), found 'localhost'",
        ),
    ],
)
def test_flag_values_nixlbench_would_reject(flags, message):
    with pytest.raises(UsageError) as caught:
        nixlbench_args(r1_plan(), **flags)
    assert str(caught.value) == message


def test_zero_warmup_is_allowed():
    assert nixlbench_args(r1_plan(), warmup_iter=0).warmup_iter == 0
