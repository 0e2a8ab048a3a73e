"""A Debian root for guests of another architecture than the host's (arm64 on x86_64).

A guest of the host's architecture runs the host's own root, shared read-only. A foreign
guest cannot: every program it runs must be built for it. So it boots on a Debian 12 tree
of its architecture, made with mmdebstrap from the configured mirror (which verifies the
signed index and every package's checksum as apt does, against the Debian archive keyring
given explicitly) and cached under ``guest-roots/ARCH-KEY``. The key hashes what decides
the tree's contents (suite, architecture, package list, mirror, and this module's own
finishing steps), so the tree is rebuilt only when one of them changes. The versions of
its packages are recorded beside it (``ARCH-KEY.json``) for the results.

Pure parts (the package list, the key, the mmdebstrap argv, reading dpkg's status file)
are separate from the build, which needs mmdebstrap, qemu-user-static and binfmt_misc
(``./quickstart arm64`` sets them up).
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from debian.deb822 import Deb822

from .. import tools
from ..config import Config
from ..errors import ConfigError, ToolError
from ..fsio import write_atomic
from ..guest.protocol import Job
from ..kernels.cache import Cache
from ..kernels.mirror import resolve_mirrors
from .argv import GUEST_PYTHONPATH, MACHINES, Share, foreign_shares, guest_path

SUITE = "bookworm"  # Debian 12: the host's own release, the tools the checks are written for

# what the guest agent and the checks use, as on an x86_64 host (quickstart's APT_PACKAGES)
PACKAGES = (
    "python3",             # the guest agent (harness.guest) runs under the root's python3
    "libbpf1",             # the agent's ctypes binding loads libbpf.so.1
    "bpftool",
    "python3-bpfcc",       # BCC checks and scripts
    "python3-pyroute2",    # netns plumbing
    "python3-pyelftools",  # set-up files read in the guest (the bpf fixture)
    "iproute2",
    "busybox-static",      # virtme-ng builds a foreign guest's initramfs from the root's busybox
    "kmod",                # modprobe for the kernel's modules
    "libbpf-tools",
    "linux-libc-dev",      # linux/bpf.h: the agent's helper probe reads the helper names there
    "python3-pytest",      # the pytest plugin's guest side runs a kernel's tests there
    "bpftrace",            # .bt scripts (0.17, as on the x86_64 host)
)

# Bumped when the finishing steps below change what a built root holds: the key changes,
# so cached roots of an older format are rebuilt.
FORMAT = 2

ROOTS_DIR = "guest-roots"


@dataclass(frozen=True)
class RootSpec:
    """What a guest root is made of: everything that goes into its cache key."""

    arch: str  # Debian's name: arm64
    mirror: str
    suite: str = SUITE
    packages: tuple[str, ...] = PACKAGES
    # a lock file's record of the root (name, version): a cached root that differs is
    # rebuilt, and a build that still differs (the archive moved on) is an error. Not in
    # the key: a root that matches the lock is the same root, locked or not
    locked: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def key(self) -> str:
        facts = {"suite": self.suite, "arch": self.arch, "mirror": self.mirror.rstrip("/"),
                 "packages": sorted(set(self.packages)), "format": FORMAT}
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.key()}"


@dataclass(frozen=True)
class GuestRoot:
    path: Path
    spec: RootSpec
    packages: dict[str, str]  # installed package -> version
    built_seconds: float | None = None  # None: found in the cache


def root_dir(cache_dir: Path, spec: RootSpec) -> Path:
    return cache_dir / ROOTS_DIR / spec.name


def manifest_path(root: Path) -> Path:
    """The JSON beside a root that records what it holds."""
    return root.parent / f"{root.name}.json"


def mmdebstrap_argv(spec: RootSpec, target: Path, keyring: Path) -> list[str]:
    """Build the root with apt's own verification: the signed InRelease checked against
    `keyring`, then every index's and package's checksum. minbase: no init system, no
    udev (virtme-init is the guest's init; the results come back through a shared
    directory, which needs no virtio console)."""
    return ["mmdebstrap", f"--arch={spec.arch}", "--variant=minbase",
            f"--keyring={keyring}", "--include=" + ",".join(sorted(set(spec.packages))),
            "--aptopt=Acquire::Retries \"3\"", spec.suite, str(target), spec.mirror]


def installed_versions(status: str) -> dict[str, str]:
    """Installed package -> version, from dpkg's status file (read directly: the root's
    own dpkg-query is a foreign binary)."""
    out = {}
    for para in Deb822.iter_paragraphs(status, use_apt_pkg=False):
        if para.get("Status", "").split()[-1:] == ["installed"] and para.get("Package"):
            out[para["Package"]] = para.get("Version", "")
    return dict(sorted(out.items()))


def missing_packages(wanted: tuple[str, ...], installed: dict[str, str]) -> list[str]:
    return sorted(p for p in set(wanted) if p not in installed)


def host_machine() -> str:
    return platform.machine()


def is_foreign(arch: str, machine: str | None = None) -> bool:
    """True when a guest of Debian architecture `arch` cannot run this host's root."""
    return MACHINES.get(arch, arch) != (machine or host_machine())


def binfmt_problem(arch: str, machine: str,
                   binfmt: Path = Path("/proc/sys/fs/binfmt_misc")) -> str | None:
    """Why foreign binaries of `arch` cannot run here (mmdebstrap runs the root's
    maintainer scripts), or None when they can."""
    qemu = MACHINES.get(arch, arch)
    if qemu == machine:
        return None
    if not (binfmt / "register").exists():
        return f"binfmt_misc is not mounted at {binfmt}"
    entry = binfmt / f"qemu-{qemu}"
    try:
        state = entry.read_text().splitlines()
    except OSError:
        return f"no qemu-{qemu} entry in {binfmt} (qemu-user-static registers it)"
    if not state or state[0].strip() != "enabled":
        return f"the qemu-{qemu} entry in {binfmt} is disabled"
    return None


HOW_TO_SET_UP = ("run ./quickstart arm64 (or, as root: apt-get install qemu-system-arm mmdebstrap "
                 "qemu-user-static binfmt-support; mount -t binfmt_misc binfmt_misc "
                 "/proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-{qemu})")


def check_host(arch: str, machine: str | None = None) -> None:
    """A ToolError saying what to install or run when this host cannot build the root."""
    machine = machine or host_machine()
    qemu = MACHINES.get(arch, arch)
    how = HOW_TO_SET_UP.format(qemu=qemu)
    tools.which("mmdebstrap")  # ToolError naming the package
    if qemu != machine:
        tools.which(f"qemu-{qemu}-static")
        problem = binfmt_problem(arch, machine)
        if problem:
            raise ToolError(f"cannot build an {arch} guest root: {problem}; {how}")


def finish(root: Path) -> None:
    """What virtme-init needs of a minbase tree: `poweroff` (it powers the guest off with
    it; without, the kernel panics when init exits). And `usr/usr -> .`: Debian's 5.10 and
    6.1 kernel packages point a modules directory's `build` link at ../../../usr/src,
    written for a /lib outside /usr; in this merged-/usr root, where /lib/modules is
    /usr/lib/modules, that lands in /usr/usr/src (BCC then finds no headers)."""
    poweroff = root / "usr/sbin/poweroff"
    if not poweroff.exists() and not poweroff.is_symlink():
        poweroff.symlink_to("/usr/bin/busybox")
    usr_usr = root / "usr/usr"
    if not usr_usr.exists() and not usr_usr.is_symlink():
        usr_usr.symlink_to(".")


def load(cache_dir: Path, spec: RootSpec) -> GuestRoot | None:
    """The cached root for spec, or None when it is not (completely) built."""
    path = root_dir(cache_dir, spec)
    try:
        data = json.loads(manifest_path(path).read_text())
    except (OSError, ValueError):
        return None
    if not path.is_dir() or data.get("key") != spec.key():
        return None
    return GuestRoot(path, spec, dict(data.get("packages", {})))


def lock_differences(packages: dict[str, str], locked: tuple[tuple[str, str], ...]) -> list[str]:
    """What differs between a root's packages and a lock's record ('' when nothing is
    locked): 'name: locked -> here' for each, sorted."""
    if not locked:
        return []
    want = dict(locked)
    return [f"{n}: {want.get(n, 'absent')} -> {packages.get(n, 'absent')}"
            for n in sorted(set(want) | set(packages)) if want.get(n) != packages.get(n)]


def spec_for(config: Config, arch: str) -> RootSpec:
    """The root a column of this architecture boots on: from the configured mirror, and
    as the lock file (when there is one) records it."""
    from ..kernels.lock import read_lock

    mirror, _ = resolve_mirrors(config)
    locked = read_lock(config.lock).root(arch) if config.lock is not None else None
    if locked is None:
        return RootSpec(arch, mirror)
    return RootSpec(arch, mirror, suite=locked.suite, locked=locked.packages)


def ensure(config: Config, spec: RootSpec) -> GuestRoot:
    """The cached root for spec, built first when missing (minutes: mmdebstrap under
    qemu-user), or rebuilt when it differs from the lock's record. Concurrent runs wait
    for one build."""
    found = load(config.cache_dir, spec)
    if found is not None and not lock_differences(found.packages, spec.locked):
        return found
    if spec.arch not in MACHINES:
        raise ConfigError(f"no guest root for architecture {spec.arch!r}; "
                          f"known: {', '.join(sorted(MACHINES))}")
    check_host(spec.arch)
    if not config.keyring.is_file():
        raise ConfigError(f"the Debian archive keyring {config.keyring} is missing; install "
                          "debian-archive-keyring or set 'keyring' in [tool.ebpf-harness]")
    cache = Cache(config.cache_dir)
    path = root_dir(config.cache_dir, spec)
    with cache.lock(f"guest-root-{spec.name}"):
        found = load(config.cache_dir, spec)
        if found is not None and not lock_differences(found.packages, spec.locked):
            return found
        t0 = time.monotonic()
        with cache.staging_dir(path) as tmp:
            try:  # into the empty staging directory
                tools.run(mmdebstrap_argv(spec, tmp, config.keyring), timeout=3600)
            except ToolError as e:
                raise ToolError(f"building the {spec.arch} guest root failed: {e}") from e
            finish(tmp)
            status = (tmp / "var/lib/dpkg/status").read_text(errors="replace")
            packages = installed_versions(status)
            missing = missing_packages(spec.packages, packages)
            if missing:
                raise ToolError(f"the {spec.arch} guest root lacks {', '.join(missing)} after "
                                f"mmdebstrap; check the mirror's {spec.suite} index")
            moved = lock_differences(packages, spec.locked)
            if moved:
                raise ConfigError(
                    f"the {spec.arch} guest root built from {spec.suite} today differs from "
                    f"the lock file's ({len(moved)} packages, e.g. {moved[0]}): the archive "
                    f"moved on; re-lock (ebpf-harness kernels lock) to pin today's root")
        seconds = round(time.monotonic() - t0, 1)
        manifest = {"key": spec.key(), "arch": spec.arch, "suite": spec.suite,
                    "mirror": spec.mirror, "wanted": sorted(set(spec.packages)),
                    "built_seconds": seconds, "packages": packages}
        write_atomic(manifest_path(path), json.dumps(manifest, indent=1).encode())
    return GuestRoot(path, spec, packages, seconds)


def modules_mount_point(root: Path, release: str) -> Path:
    """Where a kernel's modules appear in the guest (virtme-ng loads them from the root's
    /lib/modules): an empty directory in the root, made on the host, that a read-only
    share of the kernel's own modules directory covers in the guest."""
    d = root / "usr/lib/modules" / release
    d.mkdir(parents=True, exist_ok=True)
    return Path("/lib/modules") / release


def stale_roots(cache_dir: Path, current: set[str]) -> list[Path]:
    """Built roots (a manifest beside them) that are not one of `current` (the names runs
    would boot on now: another package list, mirror or format made them)."""
    d = cache_dir / ROOTS_DIR
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and manifest_path(p).is_file() and p.name not in current)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    manifest_path(path).unlink(missing_ok=True)


# the keys of a task (guest.protocol.Task) that hold host paths
TASK_PATH_KEYS = ("path", "object", "check", "script", "cwd")


def job_in_guest(job: Job, shares: Sequence[Share]) -> Job:
    """The job as a guest on a root of its own reads it: every host path it names (the
    results file, the tasks' objects, scripts and directories) where the shares show it.
    Nothing to hide there (the host's root is not visible), so `hide` is empty. A command
    run from "/" runs from the guest's own root directory."""
    tasks = []
    for t in job["tasks"]:
        task = dict(t)
        for k in TASK_PATH_KEYS:
            if task.get(k) and not (k == "cwd" and Path(str(task[k])) == Path("/")):
                task[k] = guest_path(Path(str(task[k])), shares)
        argv = t.get("argv")
        if argv:  # a command's arguments that are shared host paths, too
            task["argv"] = [_in_guest(a, shares) for a in argv]
        tasks.append(task)
    out = dict(job)
    out.update(results=guest_path(Path(job["results"]), shares), tasks=tasks, hide=[])
    return cast(Job, out)


def _in_guest(arg: str, shares: Sequence[Share]) -> str:
    """An argument as the guest sees it: an absolute host path inside a share is mapped;
    anything else (a program of the guest's own root, an option) is left as it is."""
    if not arg.startswith("/"):
        return arg
    try:
        return guest_path(Path(arg), [s for s in shares if not s.guest.is_relative_to("/lib")
                                      and not s.guest.is_relative_to("/usr")])
    except ValueError:
        return arg


@dataclass(frozen=True)
class Placement:
    """Where a guest of another architecture runs: its root, and what it sees of the host."""

    arch: str
    root: GuestRoot
    shares: tuple[Share, ...]

    def request(self) -> dict[str, Any]:
        """The VMRequest fields that boot on this root."""
        return {"arch": self.arch, "root": self.root.path, "shares": self.shares}

    def command_paths(self, job_path: Path) -> tuple[Path, Path]:
        """(job file, PYTHONPATH) for orchestrator.guest_command, as the guest sees them."""
        return Path(guest_path(job_path, self.shares)), Path(str(GUEST_PYTHONPATH))


def place(config: Config, arch: str, release: str, modules: Path | None, rundir: Path,
          package_dir: Path, needed: Sequence[Path], headers: Sequence[Path] = ()
          ) -> Placement | None:
    """None for a kernel of this host's architecture (it runs the host's root); else the
    cached root of its architecture (built first when missing), the kernel's modules made
    visible in it, and the shares for the run directory, the harness package and the
    `needed` host paths (the job file, the checks' objects and scripts)."""
    if not arch or not is_foreign(arch):
        return None
    root = ensure(config, spec_for(config, arch))
    mods = None
    if modules is not None and modules.is_dir():
        mods = (release, modules)
        modules_mount_point(root.path, release)
    trees = [h for h in headers if h.is_dir()]  # shared at the root's own usr/src
    shares = foreign_shares(rundir, package_dir, needed, mods, trees)
    return Placement(arch, root, tuple(shares))
