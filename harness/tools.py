"""The one adapter through which the host side runs external tools.

Every command is an argv list (never a shell string). A missing tool becomes a
ToolError that names the Debian package to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from .errors import ToolError

# tool -> Debian package that provides it (for the error message)
PACKAGES = {
    "gpgv": "gpgv",
    "dpkg-deb": "dpkg",
    "clang": "clang",
    "bpftool": "bpftool",
    "vng": "virtme-ng (pip) with qemu-system-x86",
    "qemu-system-x86_64": "qemu-system-x86",
    "zstd": "zstd",
    "llvm-strip": "llvm",
}


def which(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        # a venv's console scripts (vng) live next to its interpreter
        import sys

        candidate = Path(sys.executable).parent / tool
        if candidate.exists():
            return str(candidate)
        pkg = PACKAGES.get(tool, tool)
        raise ToolError(
            f"'{tool}' was not found on PATH; install {pkg} "
            f"(the quick start's ./quickstart script installs everything)"
        )
    return found


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run argv[0] (resolved with which()) and capture its output."""
    args = [which(str(argv[0])), *map(str, argv[1:])]
    try:
        proc = subprocess.run(
            args, capture_output=True, timeout=timeout, cwd=cwd, env=env, input=input
        )
    except subprocess.TimeoutExpired as e:
        raise ToolError(f"{argv[0]} did not finish within {timeout:.0f}s: {' '.join(args)}") from e
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise ToolError(
            f"{argv[0]} failed (exit {proc.returncode}): {' '.join(args)}\n  " + "\n  ".join(err)
        )
    return proc


def popen(
    argv: Sequence[str | os.PathLike[str]],
    *,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start argv in its own process group so that the whole tree can be killed."""
    args = [which(str(argv[0])), *map(str, argv[1:])]
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def tool_version(argv: Sequence[str]) -> str | None:
    """First line of a tool's version output, or None when it is not installed."""
    try:
        proc = run(argv, timeout=20, check=False)
    except ToolError:
        return None
    out = (proc.stdout or proc.stderr).decode(errors="replace").strip().splitlines()
    return out[0] if out else None
