"""What a configurator did, setting by setting, for logs, the CLI and JSON.

The summary is the record of exactly what was applied: every declared setting
appears once, either applied (✓), kept at the user's own value or replaced
(⚠, with the registry's default shown), or skipped with the reason. Nothing is
applied silently and nothing declared goes missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

APPLIED = "applied"  # set by the configurator (or already equal to the declared value)
CONFLICT = "conflict"  # the user's different value was kept
REPLACED = "replaced"  # the user's different value was replaced (override=True)
SKIPPED = "skipped"  # declared but not applicable to this target; ``note`` says why

MARKS = {APPLIED: "✓", CONFLICT: "⚠", REPLACED: "⚠", SKIPPED: "-"}
SECTIONS = (("env", "env vars"), ("engine", "engine args"), ("sampling", "sampling args"))


@dataclass(frozen=True)
class ConfigValue:
    """The registry's declared value (``default``) and the value in effect after configuring (``applied``).

    They differ exactly when the user's own value won, which is what a reader
    of the summary needs to see side by side.
    """

    default: Any
    applied: Any

    @property
    def conflict(self) -> bool:
        return self.applied != self.default


@dataclass(frozen=True)
class Setting:
    """One declared setting and its fate.

    ``kind`` is ``env``, ``engine`` or ``sampling``; ``source`` is the key path
    the declared value came from; ``previous`` is the user's value when there
    was one.
    """

    kind: str
    name: str
    value: ConfigValue
    status: str
    source: str = ""
    previous: Any = None
    note: str = ""

    def line(self) -> str:
        text = f"{MARKS[self.status]} {self.name}={_show(self.value.applied)}"
        if self.status == CONFLICT:
            text += f" (set by the user; default: {_show(self.value.default)})"
        elif self.status == REPLACED:
            text += f" (replaced the user's {_show(self.previous)})"
        elif self.status == SKIPPED:
            text = f"{MARKS[SKIPPED]} {self.name}={_show(self.value.default)} not applied"
        if self.note:
            text += f" [{self.note}]"
        return text

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "status": self.status,
            "default": self.value.default,
            "applied": self.value.applied,
            "source": self.source,
        }
        if self.previous is not None:
            out["previous"] = self.previous
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class RuntimeCheck:
    """The requested runtime against the entry's ``supported_configs``.

    ``supported`` is ``None`` when the entry declares no supported configs, so
    there is nothing to check against.
    """

    requested: dict[str, Any]
    supported: bool | None
    matched: dict[str, Any] | None = None
    nearest: tuple[dict[str, Any], ...] = ()

    def line(self) -> str:
        asked = _pairs(self.requested)
        if self.supported is None:
            return f"- runtime not checked: the entry declares no supported_configs ({asked})"
        if self.supported:
            return f"✓ supported runtime: {_pairs(self.matched or {})}"
        near = "; ".join(_pairs(rc) for rc in self.nearest) or "none declared"
        return f"⚠ unsupported runtime ({asked}); nearest supported: {near}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "supported": self.supported,
            "matched": self.matched,
            "nearest": list(self.nearest),
        }


@dataclass
class ConfigurationSummary:
    """Everything one ``configure`` call decided, in the order it was decided.

    ``extra`` holds sections a caller adds for display (KV geometry, the
    transfer plan); the configurator itself never reads them.
    """

    model: str
    backend: str
    tp_size: int
    configurator: str
    device_config: bool = False
    runtime: RuntimeCheck | None = None
    settings: list[Setting] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def conflicts(self) -> list[Setting]:
        return [s for s in self.settings if s.status in (CONFLICT, REPLACED)]

    def section(self, kind: str) -> list[Setting]:
        return [s for s in self.settings if s.kind == kind]

    def applied(self, kind: str) -> dict[str, Any]:
        """Name → value in effect for the settings of ``kind`` that are not skipped."""
        return {s.name: s.value.applied for s in self.section(kind) if s.status != SKIPPED}

    def format_log_message(self) -> str:
        """The multi-line summary for logs and stderr: ✓ applied, ⚠ the user's value (default shown)."""
        lines = [f"modelreg: {self.model} on {self.backend}, tp={self.tp_size} ({self.configurator})"]
        if not self.device_config:
            lines.append(f"  - no device_configs entry for tp={self.tp_size}; model-wide settings only")
        if self.runtime is not None:
            lines.append("  " + self.runtime.line())
        for kind, title in SECTIONS:
            items = self.section(kind)
            if items:
                lines.append(f"  {title}:")
                lines.extend("    " + s.line() for s in items)
        if self.warnings:
            lines.append("  warnings:")
            lines.extend(f"    ⚠ {w}" for w in self.warnings)
        if self.notes:
            lines.append("  notes:")
            lines.extend(f"    {n}" for n in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "backend": self.backend,
            "tp_size": self.tp_size,
            "configurator": self.configurator,
            "device_config": self.device_config,
            "runtime": self.runtime.to_dict() if self.runtime else None,
        }
        for kind, key in (("env", "env_vars"), ("engine", "engine_args"), ("sampling", "sampling_args")):
            out[key] = [s.to_dict() for s in self.section(kind)]
        out["conflicts"] = [s.name for s in self.conflicts]
        out["warnings"] = list(self.warnings)
        out["notes"] = list(self.notes)
        out.update(self.extra)
        return out


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _pairs(mapping: dict[str, Any]) -> str:
    return " ".join(f"{k}={_show(v)}" for k, v in mapping.items() if v is not None)
