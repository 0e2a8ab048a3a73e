"""virtme-ng command lines, built as argv lists by small pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# bpf in the LSM list so BPF LSM programs run on every kernel (5.10 leaves it out by
# default); names a kernel does not know are ignored by it.
LSM_LIST = "lockdown,capability,landlock,yama,apparmor,bpf"


# a hung kernel becomes a panic, so a crash with a console excerpt instead of a stall:
# soft lockups, tasks blocked over hung_task_timeout (120 s), RCU stalls (a sysctl set
# from the command line, 5.8+); parameters a kernel lacks are ignored
HANG_PANICS = ("softlockup_panic=1", "hung_task_panic=1", "sysctl.kernel.panic_on_rcu_stall=1")


def kernel_args(extra: Sequence[str] = ()) -> list[str]:
    args = [f"lsm={LSM_LIST}", "panic=-1", "oops=panic", *HANG_PANICS]
    return args + list(extra)


def accel_args(accel: str) -> list[str]:
    return ["--disable-kvm"] if accel == "tcg" else []


def share_args(rwdir: Path) -> list[str]:
    # the host root is shared read-only (virtme-ng's default); one directory is writable
    return ["--force-9p", f"--rwdir={rwdir}"]


def network_args(network: bool) -> list[str]:
    return ["--network", "user"] if network else []


def vng_argv(
    vng: str,
    vmlinuz: Path,
    rwdir: Path,
    command: Sequence[str],
    *,
    accel: str,
    memory: str = "2G",
    cpus: int = 2,
    network: bool = False,
    append: Sequence[str] = (),
    name: str = "ebpf-harness",
) -> list[str]:
    argv = [vng, "--verbose", *accel_args(accel), *share_args(rwdir), "-m", memory,
            "--cpus", str(cpus), "--name", name, *network_args(network)]
    for a in kernel_args(append):
        argv += ["--append", a]
    argv += ["-r", str(vmlinuz), "--", *command]
    return argv
