"""Where settings land: vLLM's ``VllmConfig``, SGLang's ``ServerArgs``, or our ``EngineSettings``.

The configurator speaks one small interface (:class:`ConfigTarget`) and never
touches an engine object directly, so the same registry entry applies inside a
vLLM platform plugin, before an SGLang engine starts, and in ``modelreg exec``.

Engine arg names are each backend's own spelling (vLLM ``EngineArgs`` fields,
SGLang ``ServerArgs`` fields). The backend-neutral settings of a device config
(GPU block override, chunked prefill, sampling defaults, the runtime shape) are
translated per backend here.

Which values did the user set? Engines fill in their defaults before any hook
runs, so a value on the config object does not tell. A target is told the names
the user gave explicitly (``explicit``: the server's own flags); only those, and
attributes whose engine default is ``None`` yet hold a value, count as the
user's and are never replaced.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from configurators.engine_args import backend_args, sglang_kv_cache_dtype
from registry.errors import UsageError

# Names of the requested runtime (TP, max model length, max sequences) in each backend.
RUNTIME_ARGS = {
    "vllm": ("tensor_parallel_size", "max_model_len", "max_num_seqs"),
    "sglang": ("tp_size", "context_length", "max_running_requests"),
}
# Where default sampling parameters go: vLLM's --override-generation-config, SGLang's
# --preferred-sampling-params (a JSON string in ServerArgs).
SAMPLING_ARG = {"vllm": "override_generation_config", "sglang": "preferred_sampling_params"}
# vLLM engine args whose default is None: any value present was put there by the user.
_VLLM_NONE_DEFAULTS = frozenset({"num_gpu_blocks_override"})


def gpu_blocks_arg(backend: str) -> str | None:
    """The engine arg holding a fixed KV block count; SGLang sizes its pool in tokens and has none."""
    return "num_gpu_blocks_override" if backend == "vllm" else None


def chunked_prefill_args(backend: str, max_num_batched_tokens: int) -> dict[str, Any]:
    """Chunked prefill with a token budget per step, in the backend's own names."""
    if backend == "vllm":
        return {"max_num_batched_tokens": max_num_batched_tokens, "enable_chunked_prefill": True}
    return {"chunked_prefill_size": max_num_batched_tokens}


class ConfigTarget(ABC):
    """What a configurator reads from and writes to.

    Attributes every target has: ``backend`` (``vllm`` / ``sglang``), ``model``,
    ``tp_size``, ``max_model_len``, ``max_num_seqs``, ``warmup_shapes`` (the
    requested runtime) and ``hf_config`` (``None`` when not at hand).
    """

    backend: str
    model: str | None
    tp_size: int
    max_model_len: int | None
    max_num_seqs: int | None
    warmup_shapes: tuple[tuple[int, int, int], ...]
    hf_config: Any

    @abstractmethod
    def user_value(self, name: str) -> Any:
        """The user's own value for engine arg ``name``, or ``None`` when they did not set it."""

    @abstractmethod
    def unsupported(self, name: str) -> str | None:
        """Why engine arg ``name`` cannot be written to this target, or ``None`` when it can."""

    @abstractmethod
    def set(self, name: str, value: Any) -> None:
        """Write engine arg ``name``."""

    @abstractmethod
    def user_sampling(self) -> dict[str, Any]:
        """The default sampling parameters already set (by the user)."""

    @abstractmethod
    def set_sampling(self, values: Mapping[str, Any]) -> None:
        """Make ``values`` the default sampling parameters."""

    def normalize(self, name: str, value: Any) -> Any:
        """The backend's spelling of a value (SGLang calls the FP8 KV cache ``fp8_e4m3``)."""
        if self.backend == "sglang" and name == "kv_cache_dtype":
            return sglang_kv_cache_dtype(value)
        return value


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_count(name: str, value: Any, *, optional: bool = False) -> None:
    if not (optional and value is None) and not _is_int(value, 1):
        raise UsageError(f"{name} must be a positive integer, found {value!r}")


# Each warmup shape's minimums, as the registry schema has them: prompt_len, new_tokens, batch_size.
WARMUP_MINIMUMS = (1, 0, 1)


def warmup_shapes(shapes: Any) -> tuple[tuple[int, int, int], ...]:
    """``shapes`` as a tuple of ``(prompt_len, new_tokens, batch_size)``; a UsageError names a bad one."""
    expected = "warmup_shapes expects [prompt_len, new_tokens, batch_size] (integers >= 1, 0, 1)"
    if isinstance(shapes, (str, bytes)) or not isinstance(shapes, Collection):
        raise UsageError(f"{expected}, found {shapes!r}")
    out = []
    for shape in shapes:
        if (
            isinstance(shape, (str, bytes))
            or not isinstance(shape, Collection)
            or len(shape) != 3
            or not all(_is_int(v, low) for v, low in zip(shape, WARMUP_MINIMUMS))
        ):
            raise UsageError(f"{expected}, found {shape!r}")
        out.append(tuple(shape))
    return tuple(out)


def _require(obj: Any, expected: str, attributes: tuple[str, ...]) -> None:
    """A startup hook handed the wrong object fails with what it expected, not an AttributeError."""
    missing = [name for name in attributes if not hasattr(obj, name)]
    if missing:
        raise UsageError(
            f"expected {expected} (with .{', .'.join(attributes)}), found {type(obj).__name__} "
            f"without .{', .'.join(missing)}"
        )


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


class VllmTarget(ConfigTarget):
    """A vLLM ``VllmConfig``, as seen from a platform plugin's ``check_and_update_config``.

    Reads ``parallel_config`` (TP: ``tensor_parallel_size``, else ``world_size``),
    ``model_config.max_model_len`` / ``.hf_config`` and
    ``scheduler_config.max_num_seqs``; writes through the attribute paths in
    ``data/engine_args.yaml`` (``cache_config.num_gpu_blocks_override``,
    ``scheduler_config.max_num_batched_tokens``, ...). Static warmup shapes are
    not part of ``VllmConfig``; a caller that uses them passes them in.
    """

    backend = "vllm"

    def __init__(
        self,
        vllm_config: Any,
        *,
        explicit: Collection[str] = (),
        warmup_shapes: tuple[tuple[int, int, int], ...] = (),
    ):
        self.config = vllm_config
        self.explicit = frozenset(explicit)
        self.warmup_shapes = tuple(warmup_shapes)
        self.paths = backend_args("vllm").paths
        _require(vllm_config, "a vLLM VllmConfig", ("parallel_config", "model_config", "scheduler_config"))
        parallel = vllm_config.parallel_config
        tp = getattr(parallel, "tensor_parallel_size", None) or parallel.world_size
        self.tp_size = int(tp)
        model_config = vllm_config.model_config
        self.model = getattr(model_config, "model", None)
        self.max_model_len = getattr(model_config, "max_model_len", None)
        self.max_num_seqs = getattr(vllm_config.scheduler_config, "max_num_seqs", None)
        self.hf_config = getattr(model_config, "hf_config", None)

    def user_value(self, name: str) -> Any:
        path = self.paths.get(name)
        if path is None:
            return None
        current = _get_path(self.config, path)
        if name in self.explicit or name in _VLLM_NONE_DEFAULTS:
            return current
        return None

    def unsupported(self, name: str) -> str | None:
        if name not in self.paths:
            return f"{name!r} is not a known vLLM engine arg"
        path = self.paths[name]
        if path is None:
            return f"vLLM reads {name} only from its command line; pass --{name.replace('_', '-')}"
        owner_path, _, attr = path.rpartition(".")
        owner = _get_path(self.config, owner_path)
        if owner is None or not hasattr(owner, attr):
            return f"this VllmConfig has no {path}"
        return None

    def set(self, name: str, value: Any) -> None:
        owner_path, _, attr = self.paths[name].rpartition(".")
        setattr(_get_path(self.config, owner_path), attr, value)

    def user_sampling(self) -> dict[str, Any]:
        return dict(getattr(self.config.model_config, "override_generation_config", None) or {})

    def set_sampling(self, values: Mapping[str, Any]) -> None:
        self.config.model_config.override_generation_config = {**self.user_sampling(), **values}


class SglangTarget(ConfigTarget):
    """An SGLang ``ServerArgs`` before the engine starts.

    Reads ``tp_size``, ``context_length``, ``max_running_requests`` and
    ``model_path``; writes fields by their own names (``chunked_prefill_size``,
    ``kv_cache_dtype`` with ``fp8`` spelled ``fp8_e4m3``, ...). Default sampling
    parameters go to ``preferred_sampling_params``, a JSON string.
    """

    backend = "sglang"

    def __init__(
        self,
        server_args: Any,
        *,
        explicit: Collection[str] = (),
        warmup_shapes: tuple[tuple[int, int, int], ...] = (),
        hf_config: Any = None,
    ):
        _require(server_args, "an SGLang ServerArgs", ("tp_size", "model_path"))
        self.args = server_args
        self.explicit = frozenset(explicit)
        self.warmup_shapes = tuple(warmup_shapes)
        self.tp_size = int(server_args.tp_size)
        self.model = getattr(server_args, "model_path", None)
        self.max_model_len = getattr(server_args, "context_length", None)
        self.max_num_seqs = getattr(server_args, "max_running_requests", None)
        self.hf_config = hf_config

    def user_value(self, name: str) -> Any:
        return getattr(self.args, name, None) if name in self.explicit else None

    def unsupported(self, name: str) -> str | None:
        if not hasattr(self.args, name):
            return f"this ServerArgs has no field {name!r}"
        return None

    def set(self, name: str, value: Any) -> None:
        setattr(self.args, name, value)

    def user_sampling(self) -> dict[str, Any]:
        raw = getattr(self.args, "preferred_sampling_params", None)
        if not raw:
            return {}
        return dict(json.loads(raw)) if isinstance(raw, str) else dict(raw)

    def set_sampling(self, values: Mapping[str, Any]) -> None:
        self.args.preferred_sampling_params = json.dumps({**self.user_sampling(), **values}, sort_keys=True)


@dataclass
class EngineSettings(ConfigTarget):
    """A plain record of a deployment: what the user gave and what configuring added.

    Used by ``modelreg configure`` (nothing to write into) and ``modelreg exec``
    (the added args become server flags). ``engine_args`` / ``sampling_args`` are
    the user's own and are never modified; the ``applied_*`` dicts receive what
    the configurator set.
    """

    backend: str
    tp_size: int
    model: str | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    warmup_shapes: tuple[tuple[int, int, int], ...] = ()
    hf_config: Any = None
    engine_args: dict[str, Any] = field(default_factory=dict)
    sampling_args: dict[str, Any] = field(default_factory=dict)
    applied_engine_args: dict[str, Any] = field(default_factory=dict)
    applied_sampling_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse a runtime no engine would start with, whichever entry point built it.

        The CLI checks its flags first (naming them); this catches the Python API
        and anything else, before a bad size reaches the configurator's arithmetic.
        """
        _check_count("tp_size", self.tp_size)
        _check_count("max_model_len", self.max_model_len, optional=True)
        _check_count("max_num_seqs", self.max_num_seqs, optional=True)
        self.warmup_shapes = warmup_shapes(self.warmup_shapes)
        for name in ("engine_args", "sampling_args"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise UsageError(f"{name} must be a mapping of name to value, found {value!r}")
            setattr(self, name, dict(value))

    def user_value(self, name: str) -> Any:
        return self.engine_args.get(name)

    def unsupported(self, name: str) -> str | None:
        return None

    def set(self, name: str, value: Any) -> None:
        self.applied_engine_args[name] = value

    def user_sampling(self) -> dict[str, Any]:
        return dict(self.sampling_args)

    def set_sampling(self, values: Mapping[str, Any]) -> None:
        self.applied_sampling_args.update(values)
