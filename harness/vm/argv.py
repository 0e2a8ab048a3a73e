"""virtme-ng command lines, built as argv lists by small pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# bpf in the LSM list so BPF LSM programs run on every kernel (5.10 leaves it out by
# default); names a kernel does not know are ignored by it.
LSM_LIST = "lockdown,capability,landlock,yama,apparmor,bpf"


# a hung kernel becomes a panic, so a crash with a console excerpt instead of a stall:
# soft lockups, tasks blocked over hung_task_timeout (120 s), RCU stalls (a sysctl set
# from the command line, 5.8+); parameters a kernel lacks are ignored
HANG_PANICS = ("softlockup_panic=1", "hung_task_panic=1", "sysctl.kernel.panic_on_rcu_stall=1")


def kernel_args(extra: Sequence[str] = (), hang_panics: bool = True) -> list[str]:
    """The kernel parameters of every guest. hang_panics off: for a guest on a root of
    its own, whose many shares leave no room under the kernel's 32 init environment
    variables (5.10 passes hung_task_panic on to init as one); its hangs are still caught
    by the stall limit."""
    args = [f"lsm={LSM_LIST}", "panic=-1", "oops=panic", *(HANG_PANICS if hang_panics else ())]
    return args + list(extra)


def accel_args(accel: str) -> list[str]:
    return ["--disable-kvm"] if accel == "tcg" else []


def share_args(rwdir: Path) -> list[str]:
    # the host root is shared read-only (virtme-ng's default); one directory is writable
    return ["--force-9p", f"--rwdir={rwdir}"]


def network_args(network: bool) -> list[str]:
    return ["--network", "user"] if network else []


# Debian architecture -> the kernel's `uname -m` (QEMU's name for it too)
MACHINES = {"arm64": "aarch64", "amd64": "x86_64"}

# A guest of another architecture boots on a root of its own (harness.vm.guestroot), where
# nothing of the host is visible: the host directories it needs are shared under this
# directory, a tmpfs in the guest (virtme-init mounts /run before the shared directories,
# so their mount points can be made there; the root itself is read-only).
GUEST_SHARES = PurePosixPath("/run/ebpf-harness")
GUEST_RESULTS = GUEST_SHARES / "results"  # the run directory, the one writable share
GUEST_PYTHONPATH = GUEST_SHARES / "python"  # holds `harness`, the package, and nothing else
GUEST_HOST = GUEST_SHARES / "host"  # a host directory D is seen at GUEST_HOST/D


@dataclass(frozen=True)
class Share:
    """A host directory shown to the guest at `guest`."""

    guest: PurePosixPath
    host: Path
    writable: bool = False


def share_arg(share: Share) -> str:
    kind = "rwdir" if share.writable else "rodir"
    return f"--{kind}={share.guest}={share.host}"


# Every share is a 9p device and three kernel parameters that reach init as environment
# variables (virtme_initmountN, _fstype, _access); the kernel panics past 32 of those
# ("Too many boot env vars"), and virtme-ng's own (hostname, eight rw overlays of a
# --root guest, ...) take about a dozen. So a foreign guest gets at most 6 shares: the
# results, the harness, the kernel's modules and headers, and the host directories its
# tasks read, merged into their parents until 2 hold them all (27 bundled programs'
# directories were 27 devices, more than the arm64 'virt' machine even has).
MAX_SHARED_DIRS = 2


def shared_dirs(paths: Sequence[Path], limit: int = MAX_SHARED_DIRS) -> list[Path]:
    """The directories to share so that every path is visible: a file's directory, and
    none inside another one of the list (a 9p mount inside a share would be hidden by it
    or hide it); at most `limit` of them, siblings merged into their parent (the deepest
    parent holding the most of them first). Never the host's root directory, which only
    the paths below it need: a ValueError when the paths cannot fit without it."""
    out = _outermost({p if p.is_dir() else p.parent for p in paths} - {Path("/")})
    while len(out) > limit:
        parents: dict[Path, int] = {}
        for d in out:
            if d.parent != Path("/"):
                parents[d.parent] = parents.get(d.parent, 0) + 1
        if not parents:
            raise ValueError(f"{len(out)} host directories to share, at most {limit} fit, "
                             "and only the host's root holds them all")
        best = max(parents, key=lambda p: (parents[p] > 1, len(p.parts), parents[p]))
        out = _outermost({best if d.parent == best else d for d in out})
    return out


def _outermost(dirs: set[Path]) -> list[Path]:
    ordered = sorted(dirs, key=lambda d: (len(d.parts), str(d)))
    out: list[Path] = []
    for d in ordered:
        if not any(d == o or o in d.parents for o in out):
            out.append(d)
    return out


def foreign_shares(
    rundir: Path,
    package_dir: Path,
    needed: Sequence[Path] = (),
    modules: tuple[str, Path] | None = None,
    headers: Sequence[Path] = (),
) -> list[Share]:
    """What a guest on a root of its own sees of the host: the run directory (read-write),
    the harness package (at GUEST_PYTHONPATH/harness), the directories of the paths it
    needs (the job file, the checks' objects and scripts: read-only, at GUEST_HOST + the
    host path) and the kernel's modules (release, host directory) at /lib/modules/release,
    where virtme-ng looks for them in a root given with --root (the mount point must
    exist in the root: guestroot.modules_mount_point), and the usr/src holding its
    headers trees at /usr/src (for BCC, through the modules directory's relative `build`
    link)."""
    shares = [Share(GUEST_RESULTS, rundir, writable=True),
              Share(GUEST_PYTHONPATH / "harness", package_dir)]
    shares += [Share(GUEST_HOST / d.relative_to("/"), d) for d in shared_dirs(needed)]
    if modules is not None:
        release, moddir = modules
        shares.append(Share(PurePosixPath("/lib/modules") / release, moddir))
    if headers:  # the headers trees sit side by side in the kernel's usr/src: one share
        shares.append(Share(PurePosixPath("/usr/src"), headers[0].parent))
    return shares


def guest_path(path: Path, shares: Sequence[Share]) -> str:
    """Where the guest sees a host path through these shares (the writable one first, so
    that what the guest writes reaches the host). A ValueError when none holds it."""
    ordered = sorted(shares, key=lambda s: (not s.writable, -len(s.host.parts)))
    for s in ordered:
        if path == s.host or s.host in path.parents:
            return str(s.guest / path.relative_to(s.host))
    raise ValueError(f"{path} is not shared with the guest")


def foreign_args(arch: str, root: Path, shares: Sequence[Share]) -> list[str]:
    """Boot on `root` (a tree of the guest's architecture) with these shares; vng picks
    the QEMU of `arch` (arm64: qemu-system-aarch64 -M virt)."""
    return ["--arch", arch, "--root", str(root), *(share_arg(s) for s in shares)]


def foreign_accel(accel: str, arch: str, machine: str) -> str:
    """The accelerator for a guest of Debian architecture `arch` on a host whose `uname -m`
    is `machine`: KVM only for the host's own architecture (as chosen, when usable)."""
    return accel if not arch or MACHINES.get(arch, arch) == machine else "tcg"


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
    arch: str = "",
    root: Path | None = None,
    shares: Sequence[Share] = (),
) -> list[str]:
    """One VM's vng command. Without `root`, the guest runs the host's root read-only with
    `rwdir` writable; with it (a guest of another architecture, `arch`), that root with
    `shares` (foreign_shares), which must include rwdir."""
    where = share_args(rwdir) if root is None else ["--force-9p", *foreign_args(arch, root, shares)]
    argv = [vng, "--verbose", *accel_args(accel), *where, "-m", memory,
            "--cpus", str(cpus), "--name", name, *network_args(network)]
    for a in kernel_args(append, hang_panics=root is None):
        argv += ["--append", a]
    argv += ["-r", str(vmlinuz), "--", *command]
    return argv
