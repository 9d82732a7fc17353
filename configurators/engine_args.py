"""Known engine-argument names per backend, and what to say about an unknown one.

Registry entries name engine args in the backend's own spelling (vLLM
``EngineArgs`` fields, SGLang ``ServerArgs`` fields). Engines rename and drop
arguments between releases, so a name is checked against the list in
``data/engine_args.yaml``: an unknown or removed name becomes a warning that names
the replacement or the closest known name, rather than a flag the server rejects
at startup (or, worse, silently ignores).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

DATA_FILE = Path(__file__).resolve().parent / "data" / "engine_args.yaml"


@dataclass(frozen=True)
class BackendArgs:
    """One backend's known names; ``paths`` maps a name to its attribute path (or None)."""

    backend: str
    paths: dict[str, str | None]
    removed: dict[str, str]
    renamed: dict[str, str]

    def check(self, name: str) -> str | None:
        """A warning for an unknown, removed or renamed name; ``None`` when the name is known."""
        if name in self.paths:
            return None
        if name in self.renamed:
            return f"{self.backend} engine arg {name!r} was renamed to {self.renamed[name]!r}"
        if name in self.removed:
            return f"{self.backend} engine arg {name!r} was removed: {self.removed[name]}"
        close = difflib.get_close_matches(name, list(self.paths), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.backend} engine arg {name!r}{hint}"


@cache
def backend_args(backend: str) -> BackendArgs:
    """The known names of ``backend`` (``vllm`` or ``sglang``), read once per process."""
    with DATA_FILE.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    section = data[backend]
    args = section["args"]
    paths = dict(args) if isinstance(args, dict) else {name: name for name in args}
    return BackendArgs(backend, paths, dict(section.get("removed") or {}), dict(section.get("renamed") or {}))


def sglang_kv_cache_dtype(value: Any) -> Any:
    """SGLang spells the FP8 KV cache ``fp8_e4m3``; registry entries may say ``fp8`` as vLLM does."""
    return "fp8_e4m3" if value == "fp8" else value
