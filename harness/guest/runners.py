"""What the agent does for each kind of task. Runs in a forked child of the agent.

Each function reports through ``send(event)``: a ``start`` event per subject, then exactly
one ``result`` event per subject.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import protocol

Send = Callable[[Mapping[str, Any]], None]

LOG_SMALL = 1 << 16  # level 4: statistics only
LOG_BIG = 16 << 20  # level 1: the whole verifier log, after a rejection
LOG_KEEP = 1 << 20  # how much of a log travels back (its end, where the error is)


def loader_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        from . import libbpf

        out["libbpf"] = libbpf.version()
    except OSError as e:
        out["libbpf"] = f"unavailable: {e}"
    out["bcc"] = bcc_version()
    return out


def bcc_version() -> str:
    """BCC's version read from its package, without importing it: the import loads
    libbcc and LLVM, seconds under TCG, paid only by a VM whose checks use BCC."""
    import re

    try:
        spec = importlib.util.find_spec("bcc")
    except (ImportError, ValueError) as e:
        return f"unavailable: {type(e).__name__}"
    if spec is None or not spec.submodule_search_locations:
        return "unavailable: ModuleNotFoundError"
    for where in spec.submodule_search_locations:
        try:
            text = open(os.path.join(where, "version.py")).read()
        except OSError:
            continue
        m = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text)
        if m:
            return m.group(1)
    return "installed"


def features(helper_prog_types: list[str]) -> dict:
    from . import libbpf

    f = libbpf.probe_features(tuple(helper_prog_types))
    f["btf_vmlinux"] = os.path.exists("/sys/kernel/btf/vmlinux")
    f["root_mount"] = _root_mount()
    try:
        f["lsm"] = open("/sys/kernel/security/lsm").read().strip().split(",")
    except OSError:
        f["lsm"] = []
    return f


def _root_mount() -> str:
    """How / is mounted (filesystem and options): over 9p, whether the guest caches it."""
    root = ""
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 4 and parts[1] == "/":
                    root = f"{parts[2]} {parts[3]}"  # the last mount on / is the one seen
    except OSError:
        pass
    return root


_result = protocol.result


def _keep(log: str) -> str:
    return log if len(log) <= LOG_KEEP else log[-LOG_KEEP:]


def _open(path: str, name: str, setup: dict) -> tuple[Any, tuple[list[str], list[str]]]:
    """A fresh copy of the object, set up as its loader would, to load program `name` only.
    Returns it with what the set-up file set and what was assumed (libbpf's conventions)."""
    from . import libbpf

    obj = libbpf.BpfObject(path)
    try:
        notes = obj.apply_setup(setup) if setup else []
    except libbpf.StageError:
        obj.close()
        raise
    obj.only(name)
    return obj, (notes, obj.loader_defaults())


def _load_one(path: str, name: str, setup: dict | None = None) -> tuple[Any, dict]:
    """Open a fresh copy of the object and load only program `name`.

    First with statistics-level logging; after a rejection, again with the full log, so
    that the report carries the verifier's reasoning.
    """
    from . import libbpf

    setup = setup or {}
    obj, notes = _open(path, name, setup)
    prog = obj.programs[name]
    prog.set_log(4, LOG_SMALL)
    try:
        obj.load()
    except libbpf.StageError as first:
        stats_log = prog.read_log()
        obj.close()
        obj2, _ = _open(path, name, setup)
        prog2 = obj2.programs[name]
        prog2.set_log(1 | 4, LOG_BIG)
        try:
            obj2.load()
        except libbpf.StageError as second:
            second.log = prog2.read_log() or stats_log
            obj2.close()
            raise second from first
        obj2.close()  # flaky load: passed the second time; report the first failure
        first.log = stats_log
        raise
    xlated, jited = prog.sizes()
    verifier = {"log": _keep(prog.read_log()), "verified_insns": prog.verified_insns(),
                "insns": prog.insn_count(), "xlated_bytes": xlated, "jited_bytes": jited}
    obj.setup_notes = notes
    return obj, verifier


# sections whose programs libbpf cannot attach by themselves: the loader names the target
# (a device, a socket, a perf event, a USDT probe, a program to replace)
_MANUAL = ("socket", "tc", "classifier", "action", "tcx", "netkit", "struct_ops", "syscall",
           "flow_dissector", "sk_msg", "sk_skb", "sockops", "perf_event", "usdt", "lirc_mode2",
           "sk_reuseport", "freplace")
# sections that name their target after a '/': without one there is nothing to attach to
_TARGETED = ("kprobe", "kretprobe", "uprobe", "uretprobe", "ksyscall", "kretsyscall",
             "kprobe.multi", "kretprobe.multi", "uprobe.multi", "uretprobe.multi", "tp",
             "tracepoint", "raw_tp", "raw_tracepoint", "tp_btf", "fentry", "fexit", "fmod_ret",
             "lsm", "iter", "fentry.s", "fexit.s", "lsm.s", "uprobe.s", "uretprobe.s")


def manual_attach(section: str) -> bool:
    """True when a program of this section has no automatic attach point: it is verified,
    and attaching is not applicable until a loader gives it a target."""
    base, _, target = section.lstrip("?").partition("/")
    # libbpf attaches a uprobe by itself only from 'uprobe/BINARY:FUNCTION'; 'uprobe/func'
    # leaves the binary (and often the offset) to the loader, as bashreadline does
    uprobe_without_binary = base.startswith(("uprobe", "uretprobe")) and ":" not in target
    return base.startswith(_MANUAL) or (base in _TARGETED and not target) or uprobe_without_binary


def _setup_note(obj: Any) -> str:
    given, assumed = getattr(obj, "setup_notes", ([], []))
    return (f"; loader set-up: {', '.join(given)}" if given else "") + (
        f"; loader set-up assumed: {', '.join(assumed)}" if assumed else "")


def _attach_point(prog: Any, target: str | None) -> tuple[str, Callable[[], object] | None]:
    """How a program of this section is attached for the attach check, if it can be."""
    sec = prog.section
    if target:
        return f"{sec.lstrip('?').partition('/')[0]} {target}", lambda: prog.attach_to(target)
    if sec.lstrip("?") in ("kprobe", "kretprobe"):
        # a bare kprobe section: libbpf-tools' loaders attach it to the function named like
        # the program (biotop's blk_account_io_start), so that is what is tried here
        return (f"{sec.lstrip('?')} {prog.name} (the program's name, as libbpf-tools' "
                "loaders attach a bare kprobe section)"), lambda: prog.attach_to(prog.name)
    if manual_attach(sec):
        return sec, None
    if sec.startswith("xdp"):
        return "xdp on lo", lambda: prog.attach_xdp(1)
    if sec.startswith(("cgroup_skb/", "cgroup/")):
        fd = os.open("/sys/fs/cgroup", os.O_RDONLY | os.O_DIRECTORY)
        return "root cgroup", lambda: prog.attach_cgroup(fd)
    if sec.startswith("sk_lookup"):
        fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        return "own netns", lambda: prog.attach_netns(fd)
    return sec, prog.attach


def run_object(task: dict, send: Send, job: dict) -> None:
    """Every program of a .bpf.o, each loaded alone (set up as the object's loader would,
    from the set-up file), then attached where it has a point."""
    from . import libbpf

    path, label = task["path"], task["subject"]
    setup = task.get("setup") or {}
    try:
        progs = {n: p.section for n, p in libbpf.BpfObject(path).programs.items()}
    except libbpf.StageError as e:
        send({"event": "start", "subject": label})
        send(_result(label, "fail", "load", e.detail))
        return
    if not progs:
        send({"event": "start", "subject": label})
        send(_result(label, "fail", "load", "the object has no BPF programs"))
        return
    # what the host must expect: a VM that dies inside the object leaves these unfinished
    send({"event": "plan", "subject": label, "programs": [f"{label}:{n}" for n in progs],
          "sections": progs})
    for name, section in progs.items():
        subject = f"{label}:{name}"
        send({"event": "start", "subject": subject})
        t0 = time.monotonic()
        pset = setup.get("programs", {}).get(name, {})

        def result(status: protocol.GuestStatus, stage: protocol.Stage, detail: str,
                   section: str = section,
                   subject: str = subject, t0: float = t0, **kw: Any) -> None:
            send(_result(subject, status, stage, detail, section=section,
                         duration=time.monotonic() - t0, **kw))

        if pset.get("autoload") is False:
            result("skip", "load", f"switched off by the set-up file ({setup.get('source', '')})",
                   hint=protocol.HINT_SWITCHED_OFF)
            continue
        try:
            obj, verifier = _load_one(path, name, setup)
        except libbpf.StageError as e:
            result("reject", "load", e.detail, verifier={"log": _keep(e.log)}, errno=abs(e.err))
            continue
        prog = obj.programs[name]
        where, attach = _attach_point(prog, pset.get("target"))
        try:
            if attach is None:
                result("pass", "load", f"verified; attach not applicable: section '{where}' has "
                       "no automatic attach point (the loader gives it a target)"
                       + _setup_note(obj), verifier=verifier, hint=protocol.HINT_NO_ATTACH_POINT)
                continue
            try:
                attach()
            except libbpf.StageError as e:
                if e.err in (errno.EOPNOTSUPP, errno.ENOTSUP) and not pset.get("target"):
                    result("pass", "load", f"verified; attach not applicable: section '{where}' "
                           "has no automatic attach point", verifier=verifier,
                           hint=protocol.HINT_NO_ATTACH_POINT, errno=abs(e.err))
                else:
                    result("fail", "attach", e.detail, verifier=verifier, errno=abs(e.err))
                continue
            result("pass", "attach", f"verified and attached ({where})" + _setup_note(obj),
                   verifier=verifier)
        finally:
            obj.close()


def _import_check(path: str):
    spec = importlib.util.spec_from_file_location(f"harness_check_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class CheckContext:
    """What a program's behaviour check (its check.py) gets."""

    def __init__(self, obj: Any, task: dict) -> None:
        self.obj = obj
        self.task = task
        self.kernel_release = os.uname().release

    def run(self, argv: list[str], timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, timeout=timeout, **kw)


def run_program(task: dict, send: Send, job: dict) -> None:
    """A bundled program: load the whole object, attach, run its behaviour check."""
    from . import libbpf

    subject = task["subject"]
    send({"event": "start", "subject": subject})
    t0 = time.monotonic()
    try:
        obj = libbpf.BpfObject(task["object"])
    except libbpf.StageError as e:
        send(_result(subject, "fail", "load", e.detail))
        return
    try:
        for p in obj.programs.values():
            p.set_log(4, LOG_SMALL)
        try:
            obj.load()
        except libbpf.StageError as e:
            # load each program alone to find the one the verifier refused, with its log
            obj.close()
            detail, log = e.detail, ""
            for name in libbpf.BpfObject(task["object"]).programs:
                try:
                    o, _ = _load_one(task["object"], name)
                    o.close()
                except libbpf.StageError as e2:
                    detail, log = f"program {name}: {e2.detail}", e2.log
                    break
            send(_result(subject, "reject", "load", detail, verifier={"log": _keep(log)},
                         duration=time.monotonic() - t0))
            return
        sizes = [p.sizes() for p in obj.programs.values()]
        verifier = {
            "insns": sum(p.insn_count() for p in obj.programs.values()),
            "verified_insns": sum(p.verified_insns() or 0 for p in obj.programs.values()) or None,
            "xlated_bytes": sum(x or 0 for x, _ in sizes) or None,
            "jited_bytes": sum(j or 0 for _, j in sizes) or None,
            "log": _keep("\n".join(p.read_log() for p in obj.programs.values())),
        }
        if task.get("attach", "auto") == "auto":
            for p in obj.programs.values():
                try:
                    p.attach()
                except libbpf.StageError as e:
                    send(_result(subject, "fail", "attach", f"program {p.name}: {e.detail}",
                                 verifier=verifier, duration=time.monotonic() - t0))
                    return
        check_path = task.get("check")
        if not check_path:
            send(_result(subject, "pass", "attach", "loaded and attached (no behaviour check)",
                         verifier=verifier, duration=time.monotonic() - t0))
            return
        try:
            mod = _import_check(check_path)
            detail = mod.check(CheckContext(obj, task))
        except AssertionError as e:
            send(_result(subject, "fail", "behavior", str(e) or "assertion failed",
                         verifier=verifier, duration=time.monotonic() - t0))
            return
        except (ImportError, FileNotFoundError) as e:
            # a module or a tool the check needs is missing in the guest: not the program's
            send(_result(subject, "error", "behavior", f"the check could not run: "
                         f"{type(e).__name__}: {e} (install it on the host: the guest uses "
                         "the host's files)", verifier=verifier, duration=time.monotonic() - t0))
            return
        except Exception as e:
            send(_result(subject, "fail", "behavior", f"{type(e).__name__}: {e}",
                         verifier=verifier, duration=time.monotonic() - t0))
            return
        send(_result(subject, "pass", "behavior", detail or "behaviour check passed",
                     verifier=verifier, duration=time.monotonic() - t0))
    finally:
        obj.close()


def _tail(data: bytes, lines: int = 20) -> str:
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


class Forked:
    """A function run in a fork of this process, in a session of its own, its output (fd 1
    and 2) read through a pipe: for run_command, the same handle as a Popen (pid,
    communicate, returncode)."""

    def __init__(self, target: Callable[[], int], cwd: str, env: dict[str, str]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                os.setsid()
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(w, 1)
                os.dup2(w, 2)
                os.close(r)
                os.chdir(cwd)
                os.environ.clear()
                os.environ.update(env)
                code = target()
            except BaseException:  # printed, as python3 would print it
                import traceback

                traceback.print_exc()
            finally:
                with contextlib.suppress(BaseException):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        os.close(w)
        self.pid = pid
        self.returncode: int | None = None
        self._r: int | None = r
        self._out = bytearray()

    def communicate(self, timeout: float | None = None) -> tuple[bytes, None]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._r is not None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired("script", timeout or 0)
            if not select.select([self._r], [], [], left)[0]:
                continue
            chunk = os.read(self._r, 65536)
            if not chunk:
                os.close(self._r)
                self._r = None
                break
            self._out += chunk
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return bytes(self._out), None


def run_script(script: str, args: list[str]) -> int:
    """A Python script as `python3 SCRIPT ARGS` would run it (argv, its directory first on
    the path, __main__, exit status, atexit handlers), in this process. In a Forked child
    of the agent it finds the modules the agent preloaded (bcc) already imported."""
    import atexit
    import runpy

    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    code, interrupted = 0, False
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        _print_from(script)
        interrupted = True
    except Exception:
        _print_from(script)  # the traceback python3 would print: from the script down
        code = 1
    _join_threads()  # python3 waits for the script's non-daemon threads before it exits
    atexit._run_exitfuncs()
    if interrupted:  # python3 ends on an uncaught Ctrl-C by SIGINT, after the above
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code & 0xFF


def _join_threads() -> None:
    import threading

    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            t.join()


def _print_from(script: str) -> None:
    import traceback

    _, e, tb = sys.exc_info()
    while tb is not None and tb.tb_frame.f_code.co_filename != script:
        tb = tb.tb_next
    if e is not None:
        traceback.print_exception(type(e), e, tb)


def run_command(task: dict, send: Send, job: dict,
                spawn: Callable[[dict[str, str], str], Any] | None = None) -> None:
    """Any command as root. Pass on exit 0, or (with alive) when still running after it.
    spawn(env, cwd) starts it some other way than the task's argv (run_bcc)."""
    subject = task["subject"]
    send({"event": "start", "subject": subject})
    env = dict(os.environ, **task.get("env", {}))
    cwd = task.get("cwd") or "/tmp"
    t0 = time.monotonic()
    alive = task.get("alive")
    limit = float(task.get("command_timeout", 600))
    try:
        if spawn is not None:
            proc = spawn(env, cwd)
        else:
            proc = subprocess.Popen(task["argv"], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                    start_new_session=True)
    except OSError as e:
        send(_result(subject, "fail", "run", f"cannot start {task['argv'][0]}: {e.strerror}"))
        return
    wait = float(alive) if alive is not None else limit
    try:
        out, _ = proc.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        if alive is None:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            send(_result(subject, "timeout", "run", f"still running after {limit:.0f}s; killed",
                         output=_tail(out), duration=time.monotonic() - t0))
            return
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        send(_result(subject, "pass", "run",
                     f"still running after {alive:g}s (attached); stopped with SIGINT",
                     output=_tail(out), exit_code=proc.returncode,
                     duration=time.monotonic() - t0))
        return
    rc = proc.returncode
    tail = _tail(out)
    last = next((ln for ln in reversed(tail.splitlines()) if ln.strip()), "")
    if rc == 0:
        send(_result(subject, "pass", "run", "exit 0" + (f"; {last}" if last else ""),
                     output=tail, exit_code=rc, duration=time.monotonic() - t0))
    else:
        how = f"exit {rc}" if rc >= 0 else f"killed by {signal.Signals(-rc).name}"
        if alive is not None:
            how += f" before {alive:g}s"
        send(_result(subject, "fail", "run", how + (f": {last}" if last else ""),
                     output=tail, exit_code=rc, duration=time.monotonic() - t0))


def run_bcc(task: dict, send: Send, job: dict) -> None:
    """A BCC program: its Python file run as the system python3 (python3-bpfcc) would run
    it, in a fork of the agent, where bcc (libbcc, LLVM) is already loaded."""
    task = dict(task)
    script, args = task["script"], [str(a) for a in task.get("args", [])]
    task["argv"] = [sys.executable, script, *args]
    run_command(task, send, job,
                spawn=lambda env, cwd: Forked(lambda: run_script(script, args), cwd, env))
