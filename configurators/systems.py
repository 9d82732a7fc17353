"""The GPU systems catalog: memory and link figures a sweep needs per ``system_name``.

The figures live in ``data/systems.yaml`` with the spec sheet each one comes from,
so a reader can check a number without reading code.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from registry.errors import ConfigError

CATALOG = Path(__file__).resolve().parent / "data" / "systems.yaml"
GIB = 1024**3


@dataclass(frozen=True)
class System:
    """One GPU system; bandwidths are per GPU and per direction, in GB/s (10^9 B/s)."""

    name: str
    description: str
    memory_gb: float
    memory_bandwidth_gbps: float
    nvlink_gbps: float
    inter_node_gbps: float
    gpus_per_node: int
    nvlink_domain: int
    aliases: tuple[str, ...] = ()

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gb * 10**9)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "memory_gb": self.memory_gb,
            "memory_bandwidth_gbps": self.memory_bandwidth_gbps,
            "nvlink_gbps": self.nvlink_gbps,
            "inter_node_gbps": self.inter_node_gbps,
            "gpus_per_node": self.gpus_per_node,
            "nvlink_domain": self.nvlink_domain,
        }


@lru_cache(maxsize=1)
def load_systems() -> dict[str, System]:
    """Every system by name and by alias (``gb200_sxm`` → ``gb200``)."""
    with CATALOG.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out: dict[str, System] = {}
    for name, entry in data["systems"].items():
        system = System(
            name=name,
            description=entry["description"],
            memory_gb=float(entry["memory_gb"]),
            memory_bandwidth_gbps=float(entry["memory_bandwidth_gbps"]),
            nvlink_gbps=float(entry["nvlink_gbps"]),
            inter_node_gbps=float(entry["inter_node_gbps"]),
            gpus_per_node=int(entry["gpus_per_node"]),
            nvlink_domain=int(entry["nvlink_domain"]),
            aliases=tuple(entry.get("aliases", ())),
        )
        for key in (name, *system.aliases):
            out[key] = system
    return out


def get_system(name: str, *, where: str = "system_name") -> System:
    """The system called ``name``; an unknown name is a ``ConfigError`` with a hint."""
    systems = load_systems()
    if name in systems:
        return systems[name]
    close = difflib.get_close_matches(name, list(systems), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError([f"{where}: unknown system '{name}'{hint}; known: {', '.join(systems)}"])
