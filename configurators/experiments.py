"""Experiment files for ``modelreg sweep``: the ``exps`` / patch / replace YAML, validated into dataclasses.

The schema is the public planners' experiment YAML (``exps``, one key per
experiment, ``mode: patch|replace``, ``config:`` with worker, replica and tuning
sections). Loading goes through the project's YAML loader and JSON Schema so that
every mistake is reported with its file, line and key path, all at once.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from registry.errors import ConfigError, Location, format_key_path

SCHEMA_PATH = Path(__file__).resolve().parent / "experiments.schema.json"

# Top-level optional fields and their defaults (the experiment format's own table).
TOP_LEVEL_DEFAULTS: dict[str, Any] = {
    "backend_name": "trtllm",
    "backend_version": None,
    "database_mode": "SILICON",
    "isl": 4000,
    "osl": 1000,
    "prefix": 0,
    "ttft": 1000.0,
    "tpot": 40.0,
    "enable_wideep": False,
    "profiles": [],
}

_QUANT_DEFAULTS = {  # the "Balanced" row of the quantization guide
    "gemm_quant_mode": "fp8_block",
    "moe_quant_mode": "fp8_block",
    "kvcache_quant_mode": "float16",
    "fmha_quant_mode": "float16",
    "comm_quant_mode": "half",
}
_SEARCH = [1, 2, 4, 8]


def _worker_defaults(*, dp_list: list[int]) -> dict[str, Any]:
    """One worker's quantization and search space; only attention DP differs between roles."""
    return {
        **_QUANT_DEFAULTS,
        "num_gpu_per_worker": list(_SEARCH),
        "tp_list": list(_SEARCH),
        "pp_list": [1],
        "dp_list": list(dp_list),
        "moe_tp_list": [1],
        "moe_ep_list": list(_SEARCH),
    }


# Built-in `config:` defaults that `mode: patch` merges under the experiment. Where the
# format's tables are silent, the lists follow the public planner's own defaults for one
# 8-GPU node without pipeline parallelism (docs/experiments.md lists each).
CONFIG_DEFAULTS: dict[str, Any] = {
    "nextn": None,
    "nextn_accept_rates": [0.85, 0.3, 0.0, 0.0, 0.0],
    "moe_backend": None,
    "attention_backend": "flashinfer",
    "worker_config": _worker_defaults(dp_list=_SEARCH),
    "prefill_worker_config": _worker_defaults(dp_list=[1]),  # no attention DP for prefill
    "decode_worker_config": _worker_defaults(dp_list=_SEARCH),
    "replica_config": {
        "num_gpu_per_replica": list(range(8, 129, 8)),
        "max_gpu_per_replica": 128,
        "max_prefill_worker": 32,
        "max_decode_worker": 32,
    },
    "advanced_tuning_config": {
        "prefill_latency_correction_scale": 1.1,
        "decode_latency_correction_scale": 1.08,
        "prefill_max_batch_size": 1,
        "decode_max_batch_size": 512,
    },
}

# Named presets (`profiles:`), applied in order after the defaults and before the
# experiment's own `config:`; each sets the quant modes of every worker config. They are
# the rows of the quantization selection guide.
PROFILES: dict[str, dict[str, str]] = {
    "max_throughput": {
        "gemm_quant_mode": "fp8_block",
        "moe_quant_mode": "fp8_block",
        "kvcache_quant_mode": "fp8",
        "fmha_quant_mode": "fp8",
    },
    "quality": {
        "gemm_quant_mode": "float16",
        "moe_quant_mode": "float16",
        "kvcache_quant_mode": "float16",
        "fmha_quant_mode": "float16",
    },
    "memory_constrained_moe": {
        "gemm_quant_mode": "fp8_block",
        "moe_quant_mode": "w4afp8",
        "kvcache_quant_mode": "fp8",
        "fmha_quant_mode": "float16",
    },
    "balanced": {
        "gemm_quant_mode": "fp8_block",
        "moe_quant_mode": "fp8_block",
        "kvcache_quant_mode": "float16",
        "fmha_quant_mode": "float16",
    },
}

_WORKER_KEYS = {"agg": ("worker_config",), "disagg": ("prefill_worker_config", "decode_worker_config")}
_WORKER_REQUIRED = (*_QUANT_DEFAULTS, "num_gpu_per_worker", "tp_list", "pp_list")
# Fields that `mode: replace` may leave out: their values are fixed defaults of the format
# itself, not search-space choices.
_WORKER_OPTIONAL = {"dp_list": [1], "moe_tp_list": [1], "moe_ep_list": [1]}
_REPLICA_REQUIRED = ("num_gpu_per_replica", "max_gpu_per_replica", "max_prefill_worker", "max_decode_worker")


@dataclass(frozen=True)
class WorkerConfig:
    """Quantization and the parallelism search space of one worker role."""

    gemm_quant_mode: str
    moe_quant_mode: str
    kvcache_quant_mode: str
    fmha_quant_mode: str
    comm_quant_mode: str
    num_gpu_per_worker: tuple[int, ...]
    tp_list: tuple[int, ...]
    pp_list: tuple[int, ...]
    dp_list: tuple[int, ...] = (1,)
    moe_tp_list: tuple[int, ...] = (1,)
    moe_ep_list: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class ReplicaConfig:
    """How prefill and decode workers combine into one disaggregated replica (xPyD)."""

    num_gpu_per_replica: tuple[int, ...]
    max_gpu_per_replica: int
    max_prefill_worker: int
    max_decode_worker: int


@dataclass(frozen=True)
class AdvancedTuningConfig:
    prefill_latency_correction_scale: float = 1.1
    decode_latency_correction_scale: float = 1.08
    prefill_max_batch_size: int = 1
    decode_max_batch_size: int = 512


@dataclass(frozen=True)
class Experiment:
    """One experiment after defaults, profiles and the file's own values are merged.

    ``worker_config`` is set for ``agg``; ``prefill_worker_config`` /
    ``decode_worker_config`` / ``replica_config`` for ``disagg``. ``nextn`` is
    ``None`` when left to the model (1 when it has an MTP head, else 0).
    ``location(key_path)`` points into the file for later errors (e.g. a model_path
    that does not resolve).
    """

    name: str
    mode: str
    serving_mode: str
    model_path: str
    total_gpus: int
    system_name: str
    decode_system_name: str
    backend_name: str
    backend_version: str | None
    database_mode: str
    isl: int
    osl: int
    prefix: int
    ttft: float
    tpot: float
    enable_wideep: bool
    profiles: tuple[str, ...]
    nextn: int | None
    nextn_accept_rates: tuple[float, ...]
    moe_backend: str | None
    attention_backend: str | None
    worker_config: WorkerConfig | None = None
    prefill_worker_config: WorkerConfig | None = None
    decode_worker_config: WorkerConfig | None = None
    replica_config: ReplicaConfig | None = None
    advanced_tuning_config: AdvancedTuningConfig = field(default_factory=AdvancedTuningConfig)
    locate: Callable[[tuple[str | int, ...]], Location] | None = field(
        default=None, compare=False, repr=False
    )

    def location(self, *key_path: str | int) -> Location:
        """Where ``<name>.<key_path>`` sits in the file (nearest known position)."""
        if self.locate is None:
            return Location("<experiment>")
        return self.locate((self.name, *key_path))

    def error(self, message: str, *key_path: str | int) -> ConfigError:
        return ConfigError.at(self.location(*key_path), message, (self.name, *key_path))


@dataclass(frozen=True)
class ExperimentFile:
    """The experiments of one file, in run order (``exps``, else file order)."""

    path: str
    experiments: tuple[Experiment, ...]


@lru_cache(maxsize=1)
def experiment_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def load_experiments(path: str | Path, *, text: str | None = None) -> ExperimentFile:
    """Load, validate and merge an experiment file; every problem in one ``ConfigError``."""
    from registry.loader import load_yaml_document, schema_errors

    document = load_yaml_document(path, text=text)
    problems = schema_errors(document, experiment_schema())
    if problems:
        raise ConfigError(problems)
    return experiments_from_data(document.data, document.location, str(path))


def experiments_from_data(
    data: Any,
    locate: Callable[[tuple[str | int, ...]], Location],
    path: str,
) -> ExperimentFile:
    """Turn schema-valid data into experiments; semantic problems are all collected.

    Kept apart from the YAML loading so it can be driven by any mapping with a
    ``locate(key_path)`` function.
    """
    problems: list[str] = []
    if not isinstance(data, Mapping) or not data:
        raise ConfigError.at(
            locate(()), "expected a mapping of experiments (and optionally `exps`), found nothing"
        )
    names = [key for key in data if key != "exps"]
    order = _run_order(data, names, locate, problems)
    built: dict[str, Experiment] = {}
    for name in names:  # every experiment is checked, also those `exps` leaves out
        try:
            built[name] = _build(name, data[name], locate)
        except ConfigError as error:
            problems.extend(error.problems)
    if not names and not problems:
        problems.append(f"{locate(())}: the file defines no experiment")
    if problems:
        raise ConfigError(problems)
    return ExperimentFile(path=path, experiments=tuple(built[name] for name in order))


def _run_order(
    data: Mapping[str, Any],
    names: list[str],
    locate: Callable[[tuple[str | int, ...]], Location],
    problems: list[str],
) -> list[str]:
    if "exps" not in data or data["exps"] is None:
        return names
    order: list[str] = []
    for index, name in enumerate(data["exps"]):
        where = f"{locate(('exps', index))}: exps.{index}"
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{where}: no experiment named '{name}' in this file{hint}")
        elif name in order:
            problems.append(f"{where}: experiment '{name}' is listed twice")
        else:
            order.append(name)
    return order


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: dicts recursively, everything else (lists included) replaced whole."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _build(
    name: str, raw: Mapping[str, Any], locate: Callable[[tuple[str | int, ...]], Location]
) -> Experiment:
    problems: list[str] = []

    def problem(message: str, *key_path: str | int) -> None:
        problems.append(f"{locate((name, *key_path))}: {format_key_path((name, *key_path))}: {message}")

    top = {**TOP_LEVEL_DEFAULTS, **raw}
    serving_mode = top["serving_mode"]
    own = dict(raw.get("config") or {})
    wrong_mode = "disagg" if serving_mode == "agg" else "agg"
    for key in (*_WORKER_KEYS[wrong_mode], *(("replica_config",) if serving_mode == "agg" else ())):
        if key in own:
            problem(
                f"{key} applies to serving_mode {wrong_mode if key != 'replica_config' else 'disagg'}; "
                f"this experiment is serving_mode {serving_mode}",
                "config",
                key,
            )
    if "decode_system_name" in raw and serving_mode == "agg":
        problem(
            "decode_system_name applies to serving_mode disagg; this experiment is agg", "decode_system_name"
        )

    if top["mode"] == "patch":
        config = {
            key: value for key, value in CONFIG_DEFAULTS.items() if key not in _unused_keys(serving_mode)
        }
    else:
        config = {}
    for index, profile in enumerate(top["profiles"]):
        if profile not in PROFILES:
            close = difflib.get_close_matches(profile, list(PROFILES), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problem(f"unknown profile '{profile}'{hint}; known: {', '.join(PROFILES)}", "profiles", index)
            continue
        config = merge(config, {key: PROFILES[profile] for key in _WORKER_KEYS[serving_mode]})
    config = merge(config, own)

    if top["mode"] == "replace":
        _check_complete(config, serving_mode, problem)
    if top["prefix"] >= top["isl"]:
        problem(f"expected a prefix shorter than isl ({top['isl']}), found {top['prefix']}", "prefix")
    if problems:
        raise ConfigError(problems)

    workers = {key: _worker(config[key]) for key in _WORKER_KEYS[serving_mode]}
    return Experiment(
        name=name,
        mode=top["mode"],
        serving_mode=serving_mode,
        model_path=top["model_path"],
        total_gpus=top["total_gpus"],
        system_name=top["system_name"],
        decode_system_name=top.get("decode_system_name") or top["system_name"],
        backend_name=top["backend_name"],
        backend_version=top["backend_version"],
        database_mode=top["database_mode"],
        isl=top["isl"],
        osl=top["osl"],
        prefix=top["prefix"],
        ttft=float(top["ttft"]),
        tpot=float(top["tpot"]),
        enable_wideep=top["enable_wideep"],
        profiles=tuple(top["profiles"]),
        nextn=config.get("nextn"),
        nextn_accept_rates=tuple(config.get("nextn_accept_rates") or ()),
        moe_backend=config.get("moe_backend"),
        attention_backend=config.get("attention_backend", "flashinfer"),
        replica_config=ReplicaConfig(**{k: _tuple(v) for k, v in config["replica_config"].items()})
        if serving_mode == "disagg"
        else None,
        advanced_tuning_config=AdvancedTuningConfig(**config.get("advanced_tuning_config", {})),
        locate=locate,
        **workers,
    )


def _unused_keys(serving_mode: str) -> tuple[str, ...]:
    return _WORKER_KEYS["disagg"] + ("replica_config",) if serving_mode == "agg" else _WORKER_KEYS["agg"]


def _check_complete(config: Mapping[str, Any], serving_mode: str, problem: Callable[..., None]) -> None:
    """``mode: replace`` has no defaults to fall back on: name every missing field."""
    suffix = "(mode: replace uses only what the file gives)"
    for key in _WORKER_KEYS[serving_mode]:
        if key not in config:
            problem(f"missing required section {key} {suffix}", "config")
            continue
        for name in _WORKER_REQUIRED:
            if name not in config[key]:
                problem(f"missing required field {name} {suffix}", "config", key)
    if serving_mode == "disagg":
        if "replica_config" not in config:
            problem(f"missing required section replica_config {suffix}", "config")
        else:
            for name in _REPLICA_REQUIRED:
                if name not in config["replica_config"]:
                    problem(f"missing required field {name} {suffix}", "config", "replica_config")


def _worker(section: Mapping[str, Any]) -> WorkerConfig:
    values = {**_WORKER_OPTIONAL, **section}
    return WorkerConfig(**{key: _tuple(value) for key, value in values.items()})


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
