"""VM backends: virtme-ng for real, and a fake that replays guest events for tests.

A backend boots one kernel with one command and returns when the VM is gone. Results
never come from the console or vng's exit status (vng exits 255 whatever the command
did): the guest agent writes them into the shared results directory.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .. import tools
from . import shim
from .argv import Share, foreign_accel, vng_argv


def events_file(rundir: Path) -> Path:
    """Where the guest agent writes its JSON lines, in the shared directory."""
    return rundir / "events.jsonl"


@dataclass(frozen=True)
class VMRequest:
    kernel_id: str
    vmlinuz: Path
    rundir: Path  # the one read-write directory shared with the guest
    command: tuple[str, ...]
    accel: str = "tcg"
    memory: str = "2G"
    cpus: int = 2
    network: bool = False
    timeout: float = 900.0
    append: tuple[str, ...] = ()
    stall: float = 0.0  # seconds without guest progress that count as a hang (0: off)
    root_cache: bool = True  # the host root's 9p mount cached in the guest (vm.shim)
    # a guest of another architecture (Debian's name: arm64) boots on a root of its own
    # (vm.guestroot) and sees of the host only `shares` (argv.foreign_shares, which hold
    # rundir); "" and None: the host's architecture and root, shared read-only
    arch: str = ""
    root: Path | None = None
    shares: tuple[Share, ...] = ()

    @property
    def events_path(self) -> Path:
        return events_file(self.rundir)

    @property
    def watch(self) -> Watch:
        return Watch((self.events_path, self.console_path), self.stall)

    @property
    def console_path(self) -> Path:
        """Beside the shared directory, never in it: the guest cannot plant a link there."""
        return self.rundir.parent / f"{self.rundir.name}.console.log"


@dataclass
class VMOutcome:
    returncode: int | None
    seconds: float
    timed_out: bool = False
    stalled: bool = False  # killed because the guest stopped making progress
    interrupted: bool = False
    argv: list[str] = field(default_factory=list)


class Backend(Protocol):
    name: str
    vm: bool  # a real VM, whose accelerator is chosen (KVM when usable)
    # the agent sets the guest up (bpffs, debugfs, ...); the local backend's "guest" is
    # this machine, which is left alone
    guest_setup: bool

    def run(self, req: VMRequest) -> VMOutcome: ...


class _Live:
    """Every VM process still running, so that Ctrl-C or exit leaves none behind."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.RLock()  # kill_all may run in a signal handler
        self.stopping = threading.Event()
        self.stop_signal = signal.SIGINT  # what stopped the run, for its exit status
        # once the results are being collected and written, a stop signal is recorded
        # here instead of raised: the results are written whole, then the command stops
        self.deferred = False
        self.pending: int | None = None

    def defer_stops(self) -> None:
        self.deferred = True

    def add(self, p: subprocess.Popen[bytes]) -> None:
        """Track p; when the run is already stopping, kill it at once (a VM started by a
        worker thread in the moment the stop was being handled is not left running)."""
        with self._lock:
            if not self.stopping.is_set():
                self._procs.add(p)
                return
        kill_group(p)

    def discard(self, p: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(p)

    def kill_all(self) -> None:
        with self._lock:  # after this, add() kills instead of tracking
            self.stopping.set()
            procs = list(self._procs)
        for p in procs:
            kill_group(p)


LIVE = _Live()
atexit.register(LIVE.kill_all)  # whatever ends the harness, no VM outlives it


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a CI cancel, `timeout`, a closed terminal), handled like Ctrl-C:
    every VM is killed and the partial results are written."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_on_signals() -> None:
    """In the main thread of a command: SIGINT, SIGTERM and SIGHUP raise Stopped there,
    or, once LIVE.defer_stops() was called, are only recorded (LIVE.pending)."""

    def handler(signum: int, frame: object) -> None:
        LIVE.stop_signal = signal.Signals(signum)
        if LIVE.deferred:
            LIVE.pending = signum
            return
        raise Stopped(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def kill_descendants() -> None:
    """SIGKILL every process below this one (VMs, and the tools a fetch was running)."""
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    """Every process below pid, from /proc (children that started sessions of their own
    are not in its process group)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_group(p: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group of p and every process below it, whatever its group."""
    below = _descendants(p.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class Watch:
    """Signs of life of a guest: files that grow while it works (its events, with the
    agent's heartbeat, and the console). No growth for `stall` seconds is a hang."""

    paths: tuple[Path, ...] = ()
    stall: float = 0.0  # 0: never stalled, only the overall time limit


def _progress_mark(paths: tuple[Path, ...]) -> tuple[tuple[int, int], ...]:
    marks = []
    for p in paths:
        try:
            st = os.lstat(p)
            marks.append((st.st_size, st.st_mtime_ns))
        except OSError:
            marks.append((-1, 0))
    return tuple(marks)


def supervise(proc: subprocess.Popen[bytes], timeout: float,
              watch: Watch = Watch()) -> tuple[int, bool, bool]:
    """Wait for a backend's process group; kill it at the time limit, or when the watched
    files stop growing for watch.stall seconds, and in any case once it is done, so that no
    child (QEMU) outlives it. Returns (exit status, timed out, stalled)."""
    LIVE.add(proc)
    timed_out = stalled = False
    start = last = time.monotonic()
    mark = _progress_mark(watch.paths)
    try:
        while True:
            try:
                rc = proc.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            m = _progress_mark(watch.paths)
            if m != mark:
                mark, last = m, now
            if now - start >= timeout:
                timed_out = True
            elif watch.stall and now - last >= watch.stall:
                stalled = True
            if timed_out or stalled:
                kill_group(proc)
                rc = proc.wait()
                break
    finally:
        kill_group(proc)
        LIVE.discard(proc)
    return rc, timed_out, stalled


class VngBackend:
    name = "vng"
    vm = True
    guest_setup = True

    def run(self, req: VMRequest) -> VMOutcome:
        vng = tools.which("vng")
        accel = foreign_accel(req.accel, req.arch, platform.machine()) if req.root else req.accel
        argv = vng_argv(vng, req.vmlinuz, req.rundir, req.command, accel=accel,
                        memory=req.memory, cpus=req.cpus, network=req.network,
                        append=req.append, name=f"ebpf-harness-{req.kernel_id.replace('/', '-')}",
                        arch=req.arch, root=req.root, shares=req.shares)
        env = dict(os.environ)
        # vng calls its helpers (virtme-run) by name: make the venv's bin dir visible, and
        # before it the shim that caches the host root (beside the run directory, where
        # the guest cannot write)
        path = [str(Path(vng).parent), env.get("PATH", "/usr/bin:/bin")]
        if req.root_cache:
            with contextlib.suppress(OSError):  # unwritable: the root stays uncached
                path.insert(0, str(shim.install(req.rundir.parent / ".bin")))
        env["PATH"] = ":".join(path)
        t0 = time.monotonic()
        with open(req.console_path, "wb") as console:
            if LIVE.stopping.is_set():
                return VMOutcome(None, 0.0, interrupted=True, argv=argv)
            proc = tools.popen(argv, stdout=console, stderr=subprocess.STDOUT, env=env,
                               cwd=req.rundir)
            rc, timed_out, stalled = supervise(proc, req.timeout, req.watch)
        return VMOutcome(rc, time.monotonic() - t0, timed_out=timed_out, stalled=stalled,
                         interrupted=LIVE.stopping.is_set(), argv=argv)


Script = Callable[[VMRequest], tuple[list[dict], str]]


class FakeBackend:
    """Replays recorded guest events: ``script(request) -> (events, console text)``."""

    name = "fake"
    vm = False  # no accelerator to choose: tcg is recorded
    guest_setup = True

    def __init__(self, script: Script, seconds: float = 0.01) -> None:
        self.script = script
        self.seconds = seconds
        self.requests: list[VMRequest] = []

    def run(self, req: VMRequest) -> VMOutcome:
        import json

        self.requests.append(req)
        events, console = self.script(req)
        req.console_path.write_text(console)
        with open(req.events_path, "w") as fh:
            for ev in events:
                fh.write(json.dumps(ev) + "\n")
        return VMOutcome(255, self.seconds, argv=["fake", req.kernel_id])


class LocalBackend:
    """Runs the guest command directly on this machine, without a VM.

    For fast tests of everything around the VM (the agent's protocol, the pytest plugin's
    replay): the "guest" is the host's own kernel. Never used for a real verdict.
    """

    name = "local"
    vm = False
    guest_setup = False

    def run(self, req: VMRequest) -> VMOutcome:
        t0 = time.monotonic()
        with open(req.console_path, "wb") as console:
            proc = subprocess.Popen(list(req.command), stdout=console, stderr=subprocess.STDOUT,
                                    cwd=req.rundir, start_new_session=True)
            rc, timed_out, stalled = supervise(proc, req.timeout, req.watch)
        return VMOutcome(rc, time.monotonic() - t0, timed_out=timed_out, stalled=stalled,
                         interrupted=LIVE.stopping.is_set(), argv=list(req.command))
