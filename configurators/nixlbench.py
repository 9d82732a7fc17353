"""The nixlbench command line for a transfer plan, as data and as an argv list.

nixlbench (NIXL's transfer benchmark) takes gflags; each flag is one field of
:class:`NixlbenchArgs` under the same name, with nixlbench's own default, so the
"non-default flags" of a plan are exactly what must be typed. Which side is
file, host memory or GPU memory decides ``op_type`` and the segment types, and
that depends on the backend family: storage backends (GDS, POSIX, HF3FS) move
data between memory and files, network backends (UCX, ...) between two memory
segments, OBJ between memory and an object store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from registry.errors import UsageError

GIB = 1024**3
DEFAULT_TOTAL_BUFFER_SIZE = 8 * GIB

BACKEND_FAMILIES: dict[str, str] = {
    "UCX": "ucx",
    "UCX_MO": "ucx",
    "GPUNETIO": "ucx",
    "MOONCAKE": "ucx",
    "GDS": "gds",
    "GDS_MT": "gds",
    "POSIX": "posix",
    "HF3FS": "posix",
    "OBJ": "obj",
}
BACKENDS = ("UCX", "UCX_MO", "GDS", "GDS_MT", "POSIX", "HF3FS", "OBJ", "GPUNETIO", "Mooncake")
LOCATIONS = ("file", "memory", "gpu")
SCHEMES = ("pairwise", "manytoone", "onetomany", "tp")
_SEGMENT = {"memory": "DRAM", "gpu": "VRAM"}


@dataclass(frozen=True)
class NixlbenchArgs:
    """Every nixlbench flag, named as nixlbench names it, with nixlbench's default."""

    backend: str = "UCX"
    benchmark_group: str = "default"
    check_consistency: bool = False
    device_list: str = "all"
    enable_pt: bool = False
    enable_vmm: bool = False
    etcd_endpoints: str = "http://localhost:2379"
    filepath: str = ""
    gds_batch_limit: int = 128
    gds_batch_pool_size: int = 32
    gds_mt_num_threads: int = 1
    gpunetio_device_list: str = "0"
    gpunetio_oob_list: str = ""
    hf3fs_iopool_size: int = 64
    initiator_seg_type: str = "DRAM"
    large_blk_iter_ftr: int = 16
    max_batch_size: int = 1
    max_block_size: int = 64 * 1024 * 1024
    mode: str = "SG"
    num_files: int = 1
    num_initiator_dev: int = 1
    num_iter: int = 1000
    num_target_dev: int = 1
    num_threads: int = 1
    obj_access_key: str = ""
    obj_bucket_name: str = ""
    obj_ca_bundle: str = ""
    obj_endpoint_override: str = ""
    obj_region: str = "eu-central-1"
    obj_req_checksum: str = "supported"
    obj_scheme: str = "http"
    obj_secret_key: str = ""
    obj_session_token: str = ""
    obj_use_virtual_addressing: bool = False
    op_type: str = "WRITE"
    posix_api_type: str = "AIO"
    progress_threads: int = 0
    runtime_type: str = "ETCD"
    scheme: str = "pairwise"
    start_batch_size: int = 1
    start_block_size: int = 4 * 1024
    storage_enable_direct: bool = False
    target_seg_type: str = "DRAM"
    total_buffer_size: int = DEFAULT_TOTAL_BUFFER_SIZE
    warmup_iter: int = 100
    worker_type: str = "nixl"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def non_default(self) -> dict[str, Any]:
        """Flags that differ from nixlbench's defaults, sorted by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    def argv(self, binary: str = "nixlbench") -> list[str]:
        """The full command as an argv list (never a shell string)."""
        argv = [binary]
        for name, value in self.non_default().items():
            argv.append(f"--{name}={str(value).lower()}" if isinstance(value, bool) else f"--{name}={value}")
        return argv

    def text(self, binary: str = "nixlbench") -> str:
        """The command as KVBench prints it: one non-default flag per continued line."""
        parts = [binary]
        for name, value in self.non_default().items():
            parts.append(f"--{name}" if value is True else f"--{name} {value}")
        return " \\\n    ".join(parts)


FLAG_NAMES = tuple(f.name for f in fields(NixlbenchArgs))
FLAG_DEFAULTS = {f.name: f.default for f in fields(NixlbenchArgs)}
# Counts nixlbench accepts as 0; every other integer flag is a size or a count that must be >= 1.
ZERO_ALLOWED = frozenset({"progress_threads", "warmup_iter"})


def _flag_schema(name: str, default: Any) -> dict[str, Any]:
    if isinstance(default, bool):
        return {"type": "boolean"}
    if isinstance(default, int):
        return {"type": "integer", "minimum": 0 if name in ZERO_ALLOWED else 1}
    return {"type": "string"}


# A config file's ``nixlbench:`` section: the flags by name, plus where the KV moves from and to.
SECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{name: _flag_schema(name, default) for name, default in FLAG_DEFAULTS.items()},
        "source": {"enum": list(LOCATIONS)},
        "destination": {"enum": list(LOCATIONS)},
    },
}


def check_flag(name: str, value: Any) -> None:
    """Refuse a value nixlbench would reject (or hang on) before it reaches the command line.

    Values come from the CLI, a config file's ``nixlbench`` section or the
    registry; all of them end up here, so this is where a wrong type or a
    non-positive count is caught, named as the flag the user would type.
    """
    default = FLAG_DEFAULTS[name]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UsageError(f"--{name} expects true or false, found {value!r}")
    elif isinstance(default, int):
        low = 0 if name in ZERO_ALLOWED else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            kind = "a non-negative integer" if low == 0 else "a positive integer"
            raise UsageError(f"--{name} expects {kind}, found {value!r}")
    elif not isinstance(value, str):
        raise UsageError(f"--{name} expects a string, found {value!r}")
    if name == "etcd_endpoints":
        from configurators.etcd import parse_endpoints

        parse_endpoints(value)


def backend_family(backend: str) -> str:
    family = BACKEND_FAMILIES.get(str(backend).upper())
    if family is None:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, found {backend!r}")
    return family


def segment_settings(backend: str, source: str | None, destination: str | None) -> dict[str, str]:
    """op_type and segment types for moving KV from ``source`` to ``destination``.

    Storage backends keep KVBench's convention: the local memory segment is
    ``target_seg_type`` and the file side is implied, so ``--source gpu`` alone
    means "write GPU memory to a file".
    """
    family = backend_family(backend)
    for flag, value in (("--source", source), ("--destination", destination)):
        if value is not None and value not in LOCATIONS:
            raise UsageError(f"{flag} must be one of {', '.join(LOCATIONS)}, found {value!r}")
    if family == "ucx":
        source, destination = source or "memory", destination or "memory"
        if "file" in (source, destination):
            raise UsageError(
                f"--backend {backend} moves data between memory segments: --source and --destination "
                f"must be memory or gpu, found {source} → {destination}"
            )
        return {"initiator_seg_type": _SEGMENT[source], "target_seg_type": _SEGMENT[destination]}
    source = source or "file"
    if family == "obj":
        return _object_settings(backend, source, destination)
    if source == "file":
        if destination == "file":
            raise UsageError(f"--backend {backend} cannot copy a file to a file: use --destination memory")
        if family == "posix" and destination == "gpu":
            raise UsageError(f"--backend {backend} reads files into host memory: --destination gpu needs GDS")
        local = destination or ("gpu" if family == "gds" else "memory")
        return {"op_type": "READ", "target_seg_type": _SEGMENT[local]}
    if destination not in (None, "file"):
        raise UsageError(
            f"--backend {backend} moves data between memory and a file: --source or --destination "
            f"must be file, found {source} → {destination}"
        )
    if family == "posix" and source == "gpu":
        raise UsageError(f"--backend {backend} writes from host memory: --source gpu needs GDS")
    if source == "memory":
        return {"op_type": "WRITE", "initiator_seg_type": "DRAM", "target_seg_type": "DRAM"}
    return {"op_type": "WRITE", "target_seg_type": "VRAM"}


def _object_settings(backend: str, source: str, destination: str | None) -> dict[str, str]:
    if source in _SEGMENT and destination in _SEGMENT:
        raise UsageError(
            f"--backend {backend}: source={source}, destination={destination} are both local; "
            "one side must be the object store (file)"
        )
    if source in _SEGMENT:
        return {"op_type": "WRITE", "initiator_seg_type": _SEGMENT[source]}
    if destination in _SEGMENT:
        return {"op_type": "READ", "initiator_seg_type": _SEGMENT[destination]}
    raise UsageError(f"--backend {backend}: one of --source / --destination must be memory or gpu")


def nixlbench_args(
    plan: Any,
    *,
    backend: str = "UCX",
    source: str | None = None,
    destination: str | None = None,
    **overrides: Any,
) -> NixlbenchArgs:
    """The nixlbench flags that run ``plan`` (a TransferPlan); ``overrides`` are explicit flags and win.

    Block and batch sizes come from the plan. ``--scheme tp`` makes one initiator
    feed TP target devices. Outside KVBench compatibility the buffer grows to
    hold the whole batch, since nixlbench refuses a batch that does not fit.
    """
    unknown = sorted(set(overrides) - set(FLAG_NAMES))
    if unknown:
        raise UsageError(f"unknown nixlbench flag(s): {', '.join('--' + n for n in unknown)}")
    for name, value in overrides.items():
        if value is not None:
            check_flag(name, value)
    family_backend = "Mooncake" if str(backend).upper() == "MOONCAKE" else str(backend).upper()
    values: dict[str, Any] = {"backend": family_backend}
    values.update(segment_settings(family_backend, source, destination))
    values.update(
        start_block_size=plan.io_size,
        max_block_size=plan.io_size,
        start_batch_size=plan.batch_size,
        max_batch_size=plan.batch_size,
    )
    if overrides.get("scheme") is not None and overrides["scheme"] not in SCHEMES:
        raise UsageError(f"--scheme must be one of {', '.join(SCHEMES)}, found {overrides['scheme']!r}")
    if overrides.get("scheme") == "tp":
        values.update(num_initiator_dev=1, num_target_dev=plan.tp_size)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if plan.compat != "kvbench" and "total_buffer_size" not in values:
        values["total_buffer_size"] = _buffer_for({**FLAG_DEFAULTS, **values})
    return NixlbenchArgs(**values)


def _buffer_for(flags: dict[str, Any]) -> int:
    """nixlbench's own checks: block × batch ≤ buffer / devices, buffer divisible by threads × devices."""
    devices = max(flags["num_initiator_dev"], flags["num_target_dev"])
    needed = flags["max_block_size"] * flags["max_batch_size"] * devices
    if needed <= DEFAULT_TOTAL_BUFFER_SIZE:
        return DEFAULT_TOTAL_BUFFER_SIZE
    step = flags["num_threads"] * flags["num_initiator_dev"] * flags["num_target_dev"]
    return -(-needed // step) * step
