"""What the orchestrator needs to know about a prepared kernel."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..versions import KernelVersion


@dataclass(frozen=True)
class KernelSpec:
    id: str  # what the user asked for: "6.12", "6.12.94+deb13-amd64", a path
    release: str  # uname -r, e.g. "6.12.107+deb13-amd64"
    version: KernelVersion  # upstream version, e.g. 6.12.107
    vmlinuz: Path  # bootable image
    root: Path | None  # extracted package tree (lib/modules/REL inside), None for build trees
    headers: Path | None = None  # linux-headers-REL tree (the kernel "build" directory)
    headers_common: Path | None = None  # linux-headers-*-common tree (the "source" directory)
    origin: str = ""  # "debian:trixie 6.12.107-1", "local"
    pinned: bool = False  # this exact build was asked for (a lock file), not the line's newest
    arch: str = "amd64"  # Debian architecture (amd64, arm64)
    rt: bool = False  # a PREEMPT_RT build (Debian's -rt flavour)

    def config(self) -> dict[str, str] | None:
        """The kernel's build configuration, when the kernel came with one (read once)."""
        return None if self.root is None else _config_of(self.root, self.release)

    @property
    def modules_dir(self) -> Path | None:
        return None if self.root is None else self.root / "lib" / "modules" / self.release


@lru_cache(maxsize=32)
def _config_of(root: Path, release: str) -> dict[str, str] | None:
    from .layout import kernel_config_file, parse_kconfig

    f = kernel_config_file(root, release)
    return parse_kconfig(f.read_text(errors="replace")) if f else None
