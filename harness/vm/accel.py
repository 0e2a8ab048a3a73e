"""Is hardware KVM really usable? The device node alone does not say (measured on the
machines this is built on: a paravirtual kvm can create VMs but not run a stock kernel).
Decided by what the CPU advertises; a KVM boot that still fails falls back to TCG
(vm/retry.py)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_has_virt(cpuinfo: str) -> bool:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            return "vmx" in flags or "svm" in flags
    return False


def kvm_usable(dev: Path = Path("/dev/kvm"), cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    if not dev.exists() or not os.access(dev, os.R_OK | os.W_OK):
        return False
    try:
        return cpu_has_virt(cpuinfo.read_text())
    except OSError:
        return False


def choose_accel(requested: str, usable: bool | None = None) -> str:
    if requested in ("kvm", "tcg"):
        return requested
    return "kvm" if (kvm_usable() if usable is None else usable) else "tcg"
