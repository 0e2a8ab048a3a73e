"""Is hardware KVM really usable? The device node alone does not say (measured on the
machines this is built on: a paravirtual kvm can create VMs but not run a stock kernel).
On x86_64, decided by what the CPU advertises (vmx/svm). An arm64 CPU advertises nothing
of the kind in /proc/cpuinfo: its kernel registers /dev/kvm only when it booted at EL2 and
KVM came up, so there the test is that the device creates a VM (KVM_CREATE_VM). Either
way a KVM boot that still fails falls back to TCG (vm/retry.py)."""

from __future__ import annotations

import fcntl
import os
import platform
from collections.abc import Callable
from pathlib import Path

KVM_GET_API_VERSION = 0xAE00  # _IO(KVMIO, 0x00)
KVM_CREATE_VM = 0xAE01  # _IO(KVMIO, 0x01)
KVM_API_VERSION = 12  # the only version the kernel has ever reported


def cpu_has_virt(cpuinfo: str) -> bool:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            return "vmx" in flags or "svm" in flags
    return False


def creates_vm(dev: Path) -> bool:
    """Does `dev` answer as KVM does: API version 12, and a VM created (closed at once)?"""
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, KVM_GET_API_VERSION) != KVM_API_VERSION:
            return False
        os.close(fcntl.ioctl(fd, KVM_CREATE_VM, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def kvm_usable(dev: Path = Path("/dev/kvm"), cpuinfo: Path = Path("/proc/cpuinfo"),
               machine: str | None = None,
               vm_test: Callable[[Path], bool] = creates_vm) -> bool:
    if not dev.exists() or not os.access(dev, os.R_OK | os.W_OK):
        return False
    if (machine or platform.machine()) == "aarch64":
        return vm_test(dev)
    try:
        return cpu_has_virt(cpuinfo.read_text())
    except OSError:
        return False


def choose_accel(requested: str, usable: bool | None = None) -> str:
    if requested in ("kvm", "tcg"):
        return requested
    return "kvm" if (kvm_usable() if usable is None else usable) else "tcg"
