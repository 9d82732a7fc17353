"""Shared test helpers: the real HF config fixtures and the real-service policy.

The HF configs under ``registry/hf_configs`` are byte copies of published
``config.json`` files; they double as the package's embedded snapshots.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
HF_CONFIGS = ROOT / "registry" / "hf_configs"
EXAMPLES = ROOT / "examples"
MODELREG = ROOT / ".venv" / "bin" / "modelreg"


def hf_config_path(model_id: str) -> Path:
    path = HF_CONFIGS / model_id / "config.json"
    assert path.is_file(), f"no fixture for {model_id}"
    return path


def hf_config_dict(model_id: str) -> dict[str, Any]:
    return json.loads(hf_config_path(model_id).read_text())


def all_fixture_ids() -> list[str]:
    return sorted(str(p.parent.relative_to(HF_CONFIGS)) for p in HF_CONFIGS.glob("*/*/config.json"))


def require_real_service(available: bool, reason: str) -> None:
    """Skip when a service or optional package is missing — except in CI.

    CI sets ``MODELREG_REQUIRE_REAL_SERVICES=1`` after installing etcd and NIXL,
    so a test that would silently skip there fails instead.
    """
    if available:
        return
    if os.environ.get("MODELREG_REQUIRE_REAL_SERVICES") == "1":
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)


def have_etcd() -> bool:
    return shutil.which("etcd") is not None


def have_nixl() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("nixl") is not None
    except (ImportError, ValueError):
        return False


@pytest.fixture
def offline_hf(monkeypatch, tmp_path):
    """An empty, offline HF cache so resolution falls back to the embedded snapshots."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MODELREG_CONFIG_FILE", raising=False)
    return tmp_path / "hf_home"
