"""How a run uses the machine: how many VMs at once, and how many vCPUs each. Pure.

Measured on a 2-core machine without KVM (see the README's figures): under TCG every
busy vCPU costs a host core, and the guest's work (a check at a time, Python, 9p) is
mostly single-threaded, so the second vCPU of a guest sits idle while the second core
could run another kernel; two 2-vCPU guests side by side overcommit the cores and were
slower than one after the other (48 s against 34 s for two kernels). So under TCG: one
vCPU per guest and as many guests as cores (the default matrix: 8 min 20 s with one
2-vCPU guest at a time, 4 min 05 s to 4 min 55 s with two 1-vCPU guests). With KVM the
harness keeps two vCPUs per guest (what it always used) and boots as many guests as
there are pairs of cores; that path could not be measured here.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

MAX_CPUS = 2  # vCPUs per guest: none of the checks gains from more
HOST_RESERVE_MB = 1024  # memory left to the host and QEMU's own when sizing -j auto


@dataclass(frozen=True)
class Plan:
    jobs: int  # VMs at once
    cpus: int  # vCPUs per guest
    accel: str
    cores: int
    auto: bool  # jobs chosen by the harness (-j auto), not given
    why: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def memory_mb(text: str) -> int:
    """Guest memory as QEMU takes it (2G, 1536M, 1024) in MiB; ValueError when unreadable."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)[iI]?[bB]?\s*", text)
    if not m:
        raise ValueError(f"guest memory {text!r}: give a size such as 2G or 1536M")
    n, unit = int(m.group(1)), m.group(2).upper()
    return {"K": n // 1024, "": n, "M": n, "G": n * 1024, "T": n * 1024 * 1024}[unit]


def choose(accel: str, kernels: int, cores: int, available_mb: int | None, guest_mb: int,
           jobs: int = 0, cpus: int = 0) -> Plan:
    """jobs and cpus as given (0: chosen here). Automatic jobs never exceed the kernels to
    boot, the cores (TCG) or pairs of cores (KVM), nor what the available memory holds;
    automatic vCPUs share the cores among the guests, between 1 and MAX_CPUS."""
    cores = max(1, cores)
    kernels = max(1, kernels)
    auto = jobs <= 0
    why = []
    if auto:
        per_guest = 1 if accel == "tcg" else MAX_CPUS
        jobs = max(1, min(kernels, cores // per_guest or 1))
        why.append(f"{cores} core(s), {accel}: {per_guest} core(s) per guest")
        if available_mb is not None:
            fits = max(1, (available_mb - HOST_RESERVE_MB) // max(1, guest_mb))
            if fits < jobs:
                jobs = fits
                why.append(f"memory for {fits} guest(s) of {guest_mb} MiB")
        if jobs == kernels and kernels < cores:
            why.append(f"{kernels} kernel(s)")
    else:
        jobs = max(1, min(jobs, kernels))
        why.append("given")
    if cpus <= 0:
        cpus = max(1, min(MAX_CPUS, cores // jobs))
    else:
        why.append(f"{cpus} vCPU(s) given")
    return Plan(jobs=jobs, cpus=cpus, accel=accel, cores=cores, auto=auto, why="; ".join(why))


def available_memory_mb(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def host_cores() -> int:
    """Cores this process may use (its CPU affinity, as a container or taskset limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
