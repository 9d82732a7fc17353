"""Entry points an inference server calls at startup, and the ``modelreg exec`` launcher.

- ``configure_vllm(vllm_config)`` from a vLLM platform plugin's ``check_and_update_config``;
- ``configure_sglang(server_args)`` before an SGLang engine starts;
- ``configure(model, tp_size=.., backend=..)`` for anything else;
- ``prepare_launch(argv)`` reads a ``vllm serve`` / ``python -m sglang.launch_server``
  command line, configures, and returns the final argv and child environment
  (``modelreg exec`` then replaces itself with the server).

A server's own flags are the user's explicit choices: they are read from its
command line so that no flag the user typed is ever overridden.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from configurators.base import ModelConfigurator, strict_from_env
from configurators.summary import APPLIED, REPLACED, ConfigurationSummary
from configurators.targets import (
    RUNTIME_ARGS,
    SAMPLING_ARG,
    ConfigTarget,
    EngineSettings,
    SglangTarget,
    VllmTarget,
)
from registry.errors import MatchError, UsageError
from registry.model_config import BACKENDS

log = logging.getLogger("modelreg")
# Server flag spellings that are not simply the field name with dashes.
_ALIASES = {
    "vllm": {"tp": "tensor_parallel_size", "pp": "pipeline_parallel_size", "dp": "data_parallel_size"},
    "sglang": {
        "tp": "tp_size",
        "tensor_parallel_size": "tp_size",
        "pp": "pp_size",
        "pipeline_parallel_size": "pp_size",
        "dp": "dp_size",
        "data_parallel_size": "dp_size",
        "ep": "ep_size",
        "model": "model_path",
    },
}
_SUFFIXES = {"k": 1000, "K": 1024, "m": 1000**2, "M": 1024**2, "g": 1000**3, "G": 1024**3}


# --- the Python hooks ---------------------------------------------------------------------------------


def configure(
    model: Any,
    *,
    tp_size: int,
    backend: str = "vllm",
    max_model_len: int | None = None,
    max_num_seqs: int | None = None,
    warmup_shapes: Sequence[Sequence[int]] = (),
    engine_args: Mapping[str, Any] | None = None,
    config_path: str | os.PathLike[str] | None = None,
    trust_remote_code: bool = False,
    strict: bool | None = None,
    versions: Mapping[str, str] | None = None,
    environ: MutableMapping[str, str] | None = None,
) -> ConfigurationSummary:
    """Configure a deployment of ``model`` (an ID, directory, config.json or config object).

    Env vars go to ``environ`` (default: this process's). The engine args to
    pass are ``summary.applied("engine")``; ``engine_args`` are the ones the
    caller already chose, which are kept. An unknown model is a ``MatchError``.
    """
    if backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, found {backend!r}")
    configurator, hf_config = configurator_for(model, config_path, trust_remote_code)
    target = EngineSettings(
        backend=backend,
        tp_size=tp_size,
        model=model if isinstance(model, str) else None,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        warmup_shapes=warmup_shapes,
        hf_config=hf_config,
        engine_args=engine_args if engine_args is not None else {},
    )
    return run_configurator(configurator, target, strict=strict, versions=versions, environ=environ)


def configure_vllm(
    vllm_config: Any,
    *,
    explicit: Sequence[str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
    strict: bool | None = None,
    versions: Mapping[str, str] | None = None,
) -> ConfigurationSummary | None:
    """Apply the registry entry of ``vllm_config``'s model to it and to ``os.environ``.

    ``explicit`` names the engine args the user set; by default they are read
    from this process's command line (``vllm serve ... --max-num-seqs 8``).
    A model without an entry returns ``None`` (strict mode: ``MatchError``).
    """
    if explicit is None:
        explicit = list(parse_server_flags(sys.argv[1:], "vllm")[0])
    target = VllmTarget(vllm_config, explicit=explicit)
    return _configure_object(vllm_config.model_config, target, config_path, strict, versions)


def configure_sglang(
    server_args: Any,
    *,
    explicit: Sequence[str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
    strict: bool | None = None,
    versions: Mapping[str, str] | None = None,
) -> ConfigurationSummary | None:
    """Apply the registry entry of ``server_args.model_path`` to it and to ``os.environ``.

    Call it after ``ServerArgs`` is built and before the engine starts (env vars
    must be in place before worker processes spawn). ``explicit`` works as in
    :func:`configure_vllm`.
    """
    if explicit is None:
        explicit = list(parse_server_flags(sys.argv[1:], "sglang")[0])
    target = SglangTarget(server_args, explicit=explicit)
    trust = bool(getattr(server_args, "trust_remote_code", False))
    return _configure_object(server_args.model_path, target, config_path, strict, versions, trust)


def _configure_object(
    source: Any,
    target: ConfigTarget,
    config_path: Any,
    strict: bool | None,
    versions: Mapping[str, str] | None,
    trust_remote_code: bool = False,
) -> ConfigurationSummary | None:
    try:
        configurator, hf_config = configurator_for(source, config_path, trust_remote_code)
    except MatchError:
        if strict or (strict is None and strict_from_env()):
            raise
        log.warning("modelreg: no registry entry matches %s; nothing configured", target.model)
        return None
    if target.hf_config is None:
        target.hf_config = hf_config
    summary = run_configurator(configurator, target, strict=strict, versions=versions)
    log.info("%s", summary.format_log_message())
    return summary


def configurator_for(
    source: Any, config_path: Any = None, trust_remote_code: bool = False
) -> tuple[ModelConfigurator, Any]:
    """The configurator of the entry matching ``source``, and the HF config it was matched on."""
    from registry.hf_config import load_hf_config
    from registry.model_registry import get_model_registry

    registry = get_model_registry(config_path)
    hf_config = source
    model_id = source if isinstance(source, str) else None
    if isinstance(source, (str, os.PathLike)) or hasattr(source, "hf_config"):
        hf_config = load_hf_config(source, trust_remote_code=trust_remote_code)
        model_id = model_id or getattr(source, "model", None)
    name = registry.find_matching_model(hf_config, model_id=model_id)
    if name is None:
        label = model_id or getattr(hf_config, "model_type", None) or type(source).__name__
        raise MatchError(f"no registry entry matches {label!r}; `modelreg match {label}` explains why")
    return registry.get_configurator(name), hf_config


def run_configurator(
    configurator: ModelConfigurator,
    target: ConfigTarget,
    *,
    strict: bool | None = None,
    versions: Mapping[str, str] | None = None,
    environ: MutableMapping[str, str] | None = None,
) -> ConfigurationSummary:
    if environ is not None:
        if not isinstance(environ, MutableMapping):
            raise UsageError(f"environ must be a mutable mapping (os.environ, a dict), found {environ!r}")
        configurator.environ = environ
    if strict is not None:
        configurator.strict = strict
    if versions is not None and hasattr(configurator, "versions"):
        configurator.versions = versions
    return configurator.configure(target)


# --- server command lines ----------------------------------------------------------------------------


def parse_server_flags(argv: Sequence[str], backend: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The flags of a server command line as ``{field name: value}`` and ``{field name: argv index}``.

    Both ``--flag value`` and ``--flag=value``; ``--no-flag`` is ``False``; a
    flag followed by another flag (or nothing) is ``True``. Names are the
    backend's field names (``-tp`` → ``tensor_parallel_size`` for vLLM,
    ``--tp`` → ``tp_size`` for SGLang). The index is that of the flag token.
    """
    aliases = _ALIASES[backend]
    values: dict[str, Any] = {}
    where: dict[str, int] = {}
    i = 0
    while i < len(argv):
        token, start = argv[i], i
        if token.startswith("-") and len(token) > 1 and not _is_number(token):
            raw, eq, inline = token.lstrip("-").partition("=")
            name = aliases.get(raw.replace("-", "_"), raw.replace("-", "_"))
            if eq:
                value: Any = inline
            elif i + 1 < len(argv) and not (argv[i + 1].startswith("-") and not _is_number(argv[i + 1])):
                value = argv[i + 1]
                i += 1
            elif name.startswith("no_"):
                name, value = name[3:], False
            else:
                value = True
            values[name] = value
            where[name] = start
        i += 1
    return values, where


@dataclass
class Launch:
    """A configured server launch: the argv to exec, the child environment, and what changed."""

    argv: list[str]
    env: dict[str, str]
    added_env: dict[str, str]
    summary: ConfigurationSummary


def detect_backend(argv: Sequence[str]) -> str:
    words = " ".join(argv)
    if "sglang" in words:
        return "sglang"
    if "vllm" in words:
        return "vllm"
    raise UsageError("--backend is needed: the server command names neither vllm nor sglang")


def server_model(argv: Sequence[str], backend: str, flags: Mapping[str, Any]) -> str:
    """The model a server command serves: ``vllm serve MODEL`` / ``--model``, SGLang ``--model-path``."""
    if backend == "vllm":
        for i, token in enumerate(argv[:-1]):
            if token == "serve" and not argv[i + 1].startswith("-"):
                return argv[i + 1]
        model = flags.get("model")
        expected = "`vllm serve MODEL` or --model MODEL"
    else:
        model = flags.get("model_path")
        expected = "--model-path MODEL"
    if not isinstance(model, str):
        raise UsageError(f"cannot find the model in the server command: expected {expected}")
    return model


def _int_flag(flags: Mapping[str, Any], name: str, default: int | None) -> int | None:
    """A server flag that is a positive count (``--max-model-len 32k`` too), or ``default`` when absent."""
    value = flags.get(name)
    if value is None:
        return default
    text = str(value)
    number: int | None = None
    with contextlib.suppress(ValueError, OverflowError):  # "abc", "infk"
        number = int(float(text[:-1]) * _SUFFIXES[text[-1]]) if text[-1:] in _SUFFIXES else int(text)
    if number is None or number < 1:
        flag = "--" + name.replace("_", "-")
        shown = "no value" if value is True else repr(value)
        raise UsageError(f"server flag {flag} must be a positive integer, found {shown}")
    return number


def prepare_launch(
    argv: Sequence[str],
    *,
    backend: str | None = None,
    config_path: Any = None,
    trust_remote_code: bool = False,
    strict: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> Launch:
    """Configure the server that ``argv`` would start; return the argv and environment to start it with.

    Env vars are added to a copy of ``environ`` (never replacing the user's);
    engine args the user did not give are appended as flags.
    """
    if isinstance(argv, str) or not isinstance(argv, Sequence) or not all(isinstance(a, str) for a in argv):
        raise UsageError(f"the server command must be a list of strings (an argv), found {argv!r}")
    argv = list(argv)
    if not argv:
        raise UsageError("no server command given: expected `modelreg exec -- vllm serve MODEL ...`")
    backend = backend or detect_backend(argv)
    flags, where = parse_server_flags(argv[1:], backend)
    tp_name, len_name, seqs_name = RUNTIME_ARGS[backend]
    model = server_model(argv, backend, flags)
    trust = trust_remote_code or flags.get("trust_remote_code") is True
    configurator, hf_config = configurator_for(model, config_path, trust)
    sampling_flag = SAMPLING_ARG[backend]
    user_sampling = _json_flag(flags.get(sampling_flag), sampling_flag)
    target = EngineSettings(
        backend=backend,
        tp_size=_int_flag(flags, tp_name, 1),
        model=model,
        max_model_len=_int_flag(flags, len_name, None),
        max_num_seqs=_int_flag(flags, seqs_name, None),
        hf_config=hf_config,
        engine_args=flags,
        sampling_args=user_sampling,
    )
    env = dict(os.environ if environ is None else environ)
    before = dict(env)
    summary = run_configurator(configurator, target, strict=strict, environ=env)
    final = argv + server_flags(summary, flags, backend)
    if sampling_flag in flags and target.applied_sampling_args:
        # The user gave their own sampling defaults: add the declared ones under theirs, in place.
        merged = json.dumps({**target.applied_sampling_args, **user_sampling}, sort_keys=True)
        final = _set_flag(final, where[sampling_flag], merged)
    added = {k: v for k, v in env.items() if before.get(k) != v}
    return Launch(final, env, added, summary)


def server_flags(summary: ConfigurationSummary, given: Mapping[str, Any], backend: str) -> list[str]:
    """Server flags for the applied engine args (and default sampling parameters) the user did not give."""
    out: list[str] = []
    for setting in summary.section("engine"):
        if setting.status in (APPLIED, REPLACED) and setting.name not in given:
            out += _flag(setting.name, setting.value.applied, backend)
    sampling_name = SAMPLING_ARG[backend]
    sampling = {s.name: s.value.applied for s in summary.section("sampling") if s.status == APPLIED}
    if sampling and sampling_name not in given:
        out += _flag(sampling_name, sampling, backend)
    return out


def _flag(name: str, value: Any, backend: str) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if value is True:
        return [flag]
    if value is False:
        # vLLM's boolean flags take --no-x; SGLang's are store_true, so False is their default.
        return ["--no-" + name.replace("_", "-")] if backend == "vllm" else []
    if isinstance(value, dict):
        return [flag, json.dumps(value, sort_keys=True)]
    if isinstance(value, list):
        return [flag, *(str(v) for v in value)]
    return [flag, str(value)]


def _set_flag(argv: list[str], index: int, value: str) -> list[str]:
    """``argv`` with the value of the flag at ``index`` (counted in ``argv[1:]``) replaced."""
    out = list(argv)
    position = index + 1
    if "=" in out[position]:
        out[position] = f"{out[position].partition('=')[0]}={value}"
    else:
        out[position + 1] = value
    return out


def _json_flag(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        flag = "--" + name.replace("_", "-")
        raise UsageError(f"server flag {flag} must be a JSON object, found {value!r}")
    return parsed


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
