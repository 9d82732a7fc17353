"""Deciding which registry entry a HF config belongs to.

A pattern matches when the config's ``model_type`` equals the pattern's and every
other pattern attribute is equal; attributes the pattern does not name are
ignored. Among matches, the most specific pattern (largest ``field_count``)
wins, so a FP8 variant that adds ``quantization_config`` outranks its base. Two
equally specific matches are an error rather than a coin toss, unless the
queried model ID (or the config's ``_name_or_path``) is one of their names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registry.errors import MatchError
from registry.model_config import ArchitecturePattern

_MISSING: Any = object()

# Below this many same-model_type patterns a plain scan is as fast as a lookup.
_SECONDARY_INDEX_MIN = 16


def get_attribute(config: Any, key: str) -> Any:
    """``config[key]`` for a mapping, ``config.key`` for an object; ``_MISSING`` when absent."""
    if isinstance(config, Mapping):
        return config.get(key, _MISSING)
    return getattr(config, key, _MISSING)


def values_equal(expected: Any, actual: Any) -> bool:
    """YAML pattern value vs config value, as a user would read them.

    A nested mapping matches a dict by key or a sub-config object by attribute;
    lists compare element-wise with tuples too; ``true`` is not ``1``.
    """
    if actual is _MISSING:
        return False
    if isinstance(expected, Mapping):
        if actual is None or isinstance(actual, (str, int, float, list, tuple)):
            return False
        return all(values_equal(v, get_attribute(actual, k)) for k, v in expected.items())
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(actual, (list, tuple))
            and len(actual) == len(expected)
            and all(values_equal(e, a) for e, a in zip(expected, actual))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, float) and isinstance(actual, float) and math.isnan(expected):
        return math.isnan(actual)
    return bool(expected == actual)


@dataclass(frozen=True)
class AttributeCheck:
    """One pattern attribute against the config, ``key_path`` dotted: ``quantization_config.quant_method``."""

    key_path: str
    expected: Any
    actual: Any
    present: bool
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key_path,
            "expected": self.expected,
            "actual": self.actual if self.present else "<absent>",
            "ok": self.ok,
        }


@dataclass(frozen=True)
class CandidateReport:
    """Why one entry of the config's model_type did or did not match."""

    name: str
    matched: bool
    field_count: int
    checks: tuple[AttributeCheck, ...]
    chosen: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "matched": self.matched,
            "chosen": self.chosen,
            "field_count": self.field_count,
            "checks": [c.to_dict() for c in self.checks],
        }


class ModelMatcher:
    """Pattern tests against a transformers ``PretrainedConfig``, a plain dict, or any object."""

    @staticmethod
    def matches(hf_config: Any, pattern: ArchitecturePattern) -> bool:
        if get_attribute(hf_config, "model_type") != pattern.model_type:
            return False
        return all(values_equal(v, get_attribute(hf_config, k)) for k, v in pattern.attributes.items())

    @staticmethod
    def compare(hf_config: Any, pattern: ArchitecturePattern) -> tuple[AttributeCheck, ...]:
        """Every leaf attribute of the pattern with its expected and actual value."""
        return tuple(_checks(hf_config, pattern.to_dict(), ""))


def _checks(config: Any, expected: Mapping[str, Any], prefix: str) -> Iterable[AttributeCheck]:
    for key, want in expected.items():
        got = get_attribute(config, key) if config is not _MISSING else _MISSING
        path = f"{prefix}{key}"
        if isinstance(want, Mapping) and got is not _MISSING and not isinstance(got, (str, int, float, list)):
            yield from _checks(got, want, path + ".")
            continue
        present = got is not _MISSING
        yield AttributeCheck(path, want, _plain(got) if present else None, present, values_equal(want, got))


def _plain(value: Any) -> Any:
    """Sub-config objects shown as dicts in explanations."""
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def _frozen(value: Any) -> Any:
    """A hashable stand-in for an attribute value (secondary index key)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class _Bucket:
    """The patterns of one model_type, optionally sub-indexed by their most telling scalar attribute."""

    def __init__(self, entries: list[tuple[str, ArchitecturePattern]]):
        self.entries = sorted(entries, key=lambda e: -e[1].field_count)
        self.key: str | None = None
        self.by_value: dict[Any, list[tuple[str, ArchitecturePattern]]] = {}
        self.wildcard: list[tuple[str, ArchitecturePattern]] = self.entries
        if len(entries) >= _SECONDARY_INDEX_MIN:
            self._build_secondary()

    def _build_secondary(self) -> None:
        distinct: dict[str, set[Any]] = {}
        for _, pattern in self.entries:
            for key, value in pattern.attributes.items():
                if not isinstance(value, Mapping):
                    try:
                        distinct.setdefault(key, set()).add(_frozen(value))
                    except TypeError:
                        continue
        if not distinct:
            return
        key = max(distinct, key=lambda k: len(distinct[k]))
        if len(distinct[key]) < 2:
            return
        self.key, self.wildcard = key, []
        for entry in self.entries:
            value = entry[1].attributes.get(key, _MISSING)
            if value is _MISSING:
                self.wildcard.append(entry)
            else:
                self.by_value.setdefault(_frozen(value), []).append(entry)

    def candidates(self, hf_config: Any) -> Sequence[tuple[str, ArchitecturePattern]]:
        if self.key is None:
            return self.entries
        value = get_attribute(hf_config, self.key)
        try:
            hit = self.by_value.get(_frozen(value), []) if value is not _MISSING else []
        except TypeError:
            return self.entries
        if not self.wildcard:
            return hit
        return sorted([*hit, *self.wildcard], key=lambda e: -e[1].field_count)


class PatternIndex:
    """Patterns grouped by model_type so that a query scans only its own kind.

    At 10,000 entries a linear scan costs milliseconds per query; the buckets
    (and, in large buckets, a lookup on one discriminating attribute) bring it
    well under one.
    """

    def __init__(self, patterns: Mapping[str, ArchitecturePattern]):
        grouped: dict[str, list[tuple[str, ArchitecturePattern]]] = {}
        for name, pattern in patterns.items():
            grouped.setdefault(pattern.model_type, []).append((name, pattern))
        self._buckets = {model_type: _Bucket(entries) for model_type, entries in grouped.items()}

    def same_type(self, model_type: Any) -> list[tuple[str, ArchitecturePattern]]:
        bucket = self._buckets.get(model_type) if isinstance(model_type, str) else None
        return list(bucket.entries) if bucket else []

    def find(self, hf_config: Any, preferred: Iterable[str | None] = ()) -> str | None:
        """The most specific matching entry; ambiguity is a :class:`MatchError` naming both."""
        model_type = get_attribute(hf_config, "model_type")
        bucket = self._buckets.get(model_type) if isinstance(model_type, str) else None
        if bucket is None:
            return None
        best: list[str] = []
        best_count = -1
        for name, pattern in bucket.candidates(hf_config):
            if pattern.field_count < best_count:
                break  # candidates are sorted by specificity: nothing later can win or tie
            if ModelMatcher.matches(hf_config, pattern):
                best.append(name)
                best_count = pattern.field_count
        if len(best) <= 1:
            return best[0] if best else None
        for hint in preferred:
            if hint in best:
                return hint
        raise MatchError(
            f"the config matches {len(best)} entries equally well ({', '.join(repr(n) for n in best)}, "
            f"{best_count} fields each); add a distinguishing attribute to one of their architecture patterns"
        )
