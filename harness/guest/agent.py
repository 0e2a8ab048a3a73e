"""The guest agent: reads a job file, runs each task, writes JSON lines as it goes.

Started inside the VM as ``python3 -m harness.guest JOB.json``. Every task runs in a
forked child so that a hang or a crash of one check costs only that subject; the parent
enforces the per-check timeout and is the only writer of the results file.

Events written (one JSON object per line, flushed and fsynced at once):
  {"event": "boot", "release", "machine", "loaders", "features", "boot_seconds", "phases"}
  {"event": "preload", "modules", "seconds"}
  {"event": "start", "subject", "uptime"}
  {"event": "result", "subject", "status", "stage", "detail", ...}
  {"event": "done"}
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import sys
import threading
import time
from typing import Any

from . import bpftrace, runners
from .protocol import PROTOCOL, RESULTS_DIR_ENV


class Writer:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()  # the heartbeat thread writes too

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            os.write(self.fd, line.encode())
            os.fsync(self.fd)


class _Laps:
    """Seconds each start-up phase took, into a dict."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into, self.t = into, time.monotonic()

    def __call__(self, name: str) -> float:
        now = time.monotonic()
        self.into[name] = round(now - self.t, 2)
        self.t = now
        return self.into[name]


HEARTBEAT = 10.0  # seconds; the host counts a guest silent for its stall limit as hung


def start_heartbeat(out: Writer, every: float = HEARTBEAT) -> threading.Event:
    """Write a heartbeat event while checks run (a long BCC compile prints nothing);
    set the returned event to stop it."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            out.write({"event": "heartbeat", "uptime": _uptime()})

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()
    return stop


def _uptime() -> float:
    try:
        return float(open("/proc/uptime").read().split()[0])
    except OSError:
        return 0.0


_libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def _mount(source: str, target: str, fstype: str | None, flags: int = 0,
           data: str | None = None) -> str | None:
    """mount(2) itself (a `mount` process costs a fraction of a second under TCG); the
    error, or None."""
    def enc(v: str | None) -> bytes | None:
        return v.encode() if v is not None else None

    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) == 0:
        return None
    return os.strerror(ctypes.get_errno())


def hide(paths: list[str]) -> list[str]:
    """Cover host paths the guest must not read with an empty read-only tmpfs (a file with
    /dev/null); return notes on what could not be hidden."""
    notes = []
    for p in paths:
        if os.path.isdir(p):
            err = _mount("hidden", p, "tmpfs", MS_RDONLY, "size=4k,mode=0")
        elif os.path.exists(p):
            err = _mount("/dev/null", p, None, MS_BIND)
            # a bind mount takes its flags from the source; read-only needs a remount
            err = err or _mount("none", p, None, MS_BIND | MS_RDONLY | MS_REMOUNT)
        else:
            continue
        if err:
            notes.append(f"could not hide {p}: {err}")
    return notes


def _loopback_up() -> None:
    """`ip link set lo up`, as one ioctl."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def setup_guest() -> list[str]:
    """Mount what BPF programs need; return notes on what could not be done."""
    notes = []
    mounts = [
        ("bpf", "/sys/fs/bpf"),
        ("debugfs", "/sys/kernel/debug"),
        ("tracefs", "/sys/kernel/tracing"),
    ]
    current = open("/proc/mounts").read()
    for fstype, where in mounts:
        if f" {where} " in current:
            continue
        os.makedirs(where, exist_ok=True)
        err = _mount(fstype, where, fstype)
        if err:
            notes.append(f"mount {fstype} on {where}: {err}")
    try:
        _loopback_up()
    except OSError as e:
        notes.append(f"loopback up: {e}")
    return notes


PRELOAD_LIMIT = 90.0  # seconds for every preload together; what is left is imported per check


def imports_of(path: str) -> list[str]:
    """The modules a check or BCC script imports by absolute name, in order."""
    import ast  # here: the agent's own start-up imports only what every run needs

    try:
        with open(path) as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return [n for n in dict.fromkeys(names) if n != "__future__"]


def preload_names(tasks: list[dict]) -> list[str]:
    """What the tasks' checks and scripts import, for the agent to import once before it
    forks them."""
    names: list[str] = []
    for t in tasks:
        for key in ("check", "script"):
            if t.get(key):
                names += imports_of(t[key])
    return list(dict.fromkeys(names))


def preload(names: list[str], limit: float = PRELOAD_LIMIT) -> tuple[list[str], float]:
    """Import these modules here, in the agent, so that every forked check finds them
    loaded: under TCG, importing pyroute2 or bcc over the guest's 9p root costs seconds,
    once per VM instead of once per check. Only modules on the agent's own path are
    imported (a check's neighbours are not: its directory is not on that path); one that
    fails or runs past the limit is left to the check, which reports it. Returns the
    modules loaded and the seconds taken."""
    import importlib

    t0 = time.monotonic()
    done: list[str] = []

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        for name in names:
            if time.monotonic() - t0 >= limit:  # the alarm was swallowed by a module
                break
            try:
                importlib.import_module(name)
                done.append(name)
            except TimeoutError:
                break
            except BaseException:  # the check meets it again and reports it
                continue
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return done, round(time.monotonic() - t0, 2)


def run_task(task: dict, send, job: dict) -> None:
    kind = task["kind"]
    fn = {
        "object": runners.run_object,
        "program": runners.run_program,
        "command": runners.run_command,
        "bcc": runners.run_bcc,
        "bpftrace": bpftrace.run_bpftrace,
    }.get(kind)
    if fn is None:
        send({"event": "result", "subject": task.get("subject", kind), "status": "error",
              "stage": "run", "detail": f"agent does not know task kind {kind!r}"})
        return
    fn(task, send, job)


def run_forked(task: dict, job: dict, out: Writer, timeout: float) -> None:
    """Run one task in a child; relay its events; convert hangs and deaths to results."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        os.setsid()
        wf = os.fdopen(w, "w", buffering=1)

        def send(ev: dict) -> None:
            wf.write(json.dumps(ev, default=str) + "\n")
            wf.flush()

        code = 0
        try:
            run_task(task, send, job)
        except BaseException as e:  # report, never lose the subject
            import traceback

            send({"event": "result", "subject": task.get("subject", "?"), "status": "error",
                  "stage": "run", "detail": f"agent error: {type(e).__name__}: {e}",
                  "traceback": traceback.format_exc()[-4000:]})
            code = 1
        wf.close()
        os._exit(code)
    os.close(w)
    buf = b""
    started: str | None = None
    finished: set[str] = set()
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([r], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(r, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if ev.get("event") == "start":
                started = ev["subject"]
                ev["uptime"] = _uptime()  # lines up console splats with the check
                deadline = time.monotonic() + timeout  # the timeout is per check
            elif ev.get("event") == "result":
                finished.add(ev["subject"])
            out.write(ev)
    os.close(r)
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    subject = started or task.get("subject", "?")
    if subject in finished:
        return
    if timed_out:
        out.write({"event": "result", "subject": subject, "status": "timeout",
                   "stage": "run", "detail": f"no verdict within {timeout:.0f}s; stopped"})
    elif os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        out.write({"event": "result", "subject": subject, "status": "error", "stage": "run",
                   "detail": f"the agent's check process died of {sig}"})
    elif not finished:
        out.write({"event": "result", "subject": subject, "status": "error", "stage": "run",
                   "detail": "the check ended without a verdict"})


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m harness.guest JOB.json", file=sys.stderr)
        return 2
    sys.dont_write_bytecode = True
    started = _uptime()
    with open(argv[0]) as fh:
        job = json.load(fh)
    out = Writer(job["results"])
    # commands (the plugin's guest pytest) write their own files beside the events
    os.environ[RESULTS_DIR_ENV] = os.path.dirname(job["results"])
    # from the start: mounting, hiding and preloading print nothing for a while
    beating = start_heartbeat(out, float(job.get("heartbeat", HEARTBEAT)))
    phases: dict[str, float] = {}
    lap = _Laps(phases)
    notes = setup_guest() if job.get("setup", True) else []
    if job.get("setup", True):
        notes += hide(job.get("hide", []))
    lap("setup")
    boot: dict[str, Any] = {
        "event": "boot",
        "protocol": PROTOCOL,
        "release": os.uname().release,
        "machine": os.uname().machine,
        "boot_seconds": started,
        "notes": notes,
        "phases": phases,
    }
    try:
        boot["loaders"] = runners.loader_versions()
        lap("loaders")
        boot["features"] = runners.features(job.get("helper_prog_types", []))  # 0.1 s
        lap("features")
    except Exception as e:  # the boot event must go out whatever happens
        boot["notes"].append(f"feature probe failed: {type(e).__name__}: {e}")
    out.write(boot)
    if job.get("preload", True):
        loaded, took = preload(preload_names(job["tasks"]))
        out.write({"event": "preload", "modules": loaded, "seconds": took})
    timeout = float(job.get("check_timeout", 120))
    for task in job["tasks"]:
        run_forked(task, job, out, float(task.get("timeout", timeout)))
    beating.set()
    out.write({"event": "done", "uptime": _uptime()})
    os.sync()
    return 0
