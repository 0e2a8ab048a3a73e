from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.config import Config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return Config(cache_dir=tmp_path / "cache", catalog=REPO / "kernels")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "ebpf-harness") if (REPO / ".venv").exists()
         else "ebpf-harness", *args],
        capture_output=True, text=True, env=e, timeout=600,
    )
