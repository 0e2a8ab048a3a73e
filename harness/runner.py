"""Orchestration: one VM per kernel, every subject inside it, results into the model.

The pure part (``collect``) turns the guest's JSON lines plus the VM outcome into
Results; ``run_kernels`` does the side effects (job files, VMs, threads).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bpfobj import verdict
from .classify import classify
from .config import Config
from .errors import ConfigError
from .events import BootStarted, Listener, Note, RunPlanned, VMEnded, from_guest
from .kernels.cache import Cache
from .kernels.fetch import in_use_name
from .kernels.model import KernelSpec
from .paths import guest_pythonpath
from .results import KernelInfo, Result
from .suite import ProgramDecl
from .verifier import info_from
from .versions import KernelVersion
from .vm.accel import choose_accel
from .vm.backend import LIVE, Backend, VMOutcome, VMRequest, events_file
from .vm.console import crash_headline, find_crash, find_splats
from .vm.plan import Plan, available_memory_mb, host_cores, memory_mb
from .vm.plan import choose as choose_plan
from .vm.shared import GUEST_FILE_LIMIT, read_guest_bytes

PACKAGE_PARENT = Path(__file__).resolve().parent.parent
GUEST_PYTHON = "/usr/bin/python3"  # Debian's, where python3-bpfcc and pyroute2 live


@dataclass
class Subject:
    id: str
    task: dict[str, Any]
    decl: ProgramDecl | None = None
    compile_error: str | None = None
    network: bool = False
    boot_params: tuple[str, ...] = ()
    # subjects an object task expands to are only known in the guest: a result whose
    # subject starts with "<id>:" belongs to this one
    expands: bool = False
    # what each program needs and its inferred minimum kernel (bpfobj.requirements),
    # program name -> ProgramNeeds; host-side only, never sent to the guest
    needs: dict[str, Any] = field(default_factory=dict)


@dataclass
class KernelRun:
    kernel: KernelSpec
    info: KernelInfo
    results: list[Result] = field(default_factory=list)
    console_path: Path | None = None


class _Follower(threading.Thread):
    """Reads the guest's events while its VM runs, once: keeps them (for collect) and
    hands each on as a typed event. Reads at most GUEST_FILE_LIMIT bytes of them."""

    def __init__(self, path: Path, kernel: str, listener: Listener) -> None:
        super().__init__(name=f"follow-{kernel}", daemon=True)
        self.path, self.kernel, self.listener = path, kernel, listener
        self.offset, self.pending = 0, b""
        self.events: list[dict] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            self.poll()

    def poll(self) -> None:
        while self.offset < GUEST_FILE_LIMIT and (
                chunk := read_guest_bytes(self.path, self.offset,
                                          min(1 << 20, GUEST_FILE_LIMIT - self.offset))):
            self.offset += len(chunk)
            *lines, self.pending = (self.pending + chunk).split(b"\n")
            for line in lines:
                self._take(line)

    def _take(self, line: bytes) -> None:
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            return  # a line cut by a crash
        if not isinstance(raw, dict):
            return
        self.events.append(raw)
        ev = from_guest(self.kernel, raw)
        if ev is not None:
            self.listener(ev)

    def finish(self) -> list[dict]:
        """Stop following; returns every event the guest wrote."""
        self.stopping.set()
        self.join()
        self.poll()  # what arrived last (or all of it, from a backend that writes at the end)
        if self.pending:
            self._take(self.pending)  # a last line without its newline
            self.pending = b""
        return self.events


def _unmet(subject: Subject, kernel: KernelSpec) -> str | None:
    return subject.decl.unmet(kernel.version, kernel.config()) if subject.decl else None


def _expected(subject: Subject, kernel: KernelSpec) -> str:
    return "skip" if _unmet(subject, kernel) else "pass"


def _apply_expectation(r: Result, subject: Subject | None, kernel: KernelSpec) -> Result:
    """Where the declaration rules a kernel out, a rejection or failure is the expected
    skip; a pass there means the declaration is wrong, and the report says so."""
    if subject is None or subject.decl is None:
        return r
    why = _unmet(subject, kernel)
    r.expected = "skip" if why else "pass"
    if why:
        if r.status in ("reject", "fail"):
            r.detail = f"{why}; {r.status}: {r.detail}"
            r.status = "skip"
        elif r.status == "pass":
            r.detail = (f"passes although the declaration rules this kernel out ({why}): "
                        f"fix {subject.decl.id}/program.toml ({r.detail})")
    return r


def collect(
    kernel: KernelSpec,
    subjects: list[Subject],
    events: list[dict],
    console: str,
    outcome: VMOutcome,
    console_path: Path | None = None,
) -> tuple[KernelInfo, list[Result]]:
    """Pure: guest events + VM outcome -> KernelInfo and one Result per subject."""
    info = KernelInfo(id=kernel.id, release=kernel.release, version=str(kernel.version),
                      origin=kernel.origin, vm_seconds=round(outcome.seconds, 2),
                      pinned=kernel.pinned)
    by_id = {s.id: s for s in subjects}
    results: list[Result] = []
    seen: set[str] = set()
    booted = False
    for ev in events:
        kind = ev.get("event")
        if kind == "boot":
            booted = True
            info.boot_seconds = ev.get("boot_seconds")
            info.features = ev.get("features", {})
            info.notes = ev.get("notes", [])
            info.features["loaders"] = ev.get("loaders", {})
            if ev.get("release") and ev["release"] != kernel.release:
                info.notes.append(f"guest reports release {ev['release']}")
        elif kind == "result":
            sid = ev["subject"]
            owner = by_id.get(sid) or next(
                (s for s in subjects if s.expands and sid.startswith(s.id + ":")), None)
            r = Result(subject=sid, kernel=kernel.id, status=ev.get("status", "error"),
                       stage=ev.get("stage", "run"), detail=ev.get("detail", ""),
                       verifier=info_from(ev.get("verifier")), duration=ev.get("duration"),
                       output=ev.get("output", ""), section=str(ev.get("section", "")))
            if r.verifier and r.status == "reject" and r.verifier.summary:
                # the verifier's own reason explains a rejection better than libbpf's wrapper
                r.detail = f"verifier: {r.verifier.summary}"
            results.append(_apply_expectation(r, owner, kernel))
            seen.add(sid)
    _attach_splats(results, events, console, info)
    # every expected cell without a verdict gets one that says why, from what the VM did:
    # an object's programs are known from the guest's plan event, sent before the first
    crash = find_crash(console)
    started = {ev["subject"] for ev in events if ev.get("event") == "start"}
    info.ready_seconds = next((ev["uptime"] for ev in events if ev.get("event") == "start"
                               and isinstance(ev.get("uptime"), (int, float))), None)
    plans = {ev["subject"]: list(ev.get("programs", [])) for ev in events
             if ev.get("event") == "plan"}
    finished = any(ev.get("event") == "done" for ev in events)
    why = _Why(crash, outcome, booted, finished, console, console_path)
    for s in subjects:
        if s.compile_error is not None:
            r = Result(s.id, kernel.id, "fail", "compile", s.compile_error)
            results.append(_apply_expectation(r, s, kernel))
            continue
        wanted = [s.id]
        if s.expands and s.id not in seen:
            wanted = plans.get(s.id) or wanted
        for sid in wanted:
            if sid in seen:
                continue
            r = why.result(sid, kernel.id, sid in started)
            r.expected = _expected(s, kernel)
            results.append(r)
    _classify(results)
    _explain(kernel, subjects, results)
    sections: dict[str, str] = {}
    for ev in events:
        if ev.get("event") == "plan" and isinstance(ev.get("sections"), dict):
            sections.update({f"{ev['subject']}:{n}": str(v) for n, v in ev["sections"].items()})
    return info, object_rows(subjects, results, sections)


def _explain(kernel: KernelSpec, subjects: list[Subject], results: list[Result]) -> None:
    """Each cell's predicted minimum kernel (read from the object); a rejection or attach
    failure below it says what the program needs first, one at or above it is marked
    unexplained: the case worth a look (a complexity limit, a changed kfunc, a config).

    A user's object declares nothing, so the prediction is its expectation: below it a
    refusal is the expected skip, and a pass is a backport, named as one."""
    for s in subjects:
        if not s.needs:
            continue
        for r in results:
            if r.subject == s.id and not s.expands:
                names = list(s.needs)  # a bundled program: the whole object
            elif s.expands and r.subject.startswith(s.id + ":"):
                names = [r.subject[len(s.id) + 1:]]
            else:
                continue
            progs = [s.needs[n] for n in names if n in s.needs and s.needs[n].min_kernel]
            if not progs:
                continue
            top = max(progs, key=lambda p: KernelVersion.parse(p.min_kernel))
            r.predicted = top.min_kernel
            below = kernel.version.below_line(KernelVersion.parse(top.min_kernel))
            # every need this kernel is older than, newest first
            newer = sorted({n for p in progs for n in p.needs if n.version is not None
                            and kernel.version.below_line(n.version)},
                           key=lambda n: (n.version, n.kind, n.name), reverse=True)
            needs = ", ".join(n.describe() for n in newer)
            refused = r.status in ("reject", "fail") or (
                r.status == "skip" and re.search(r"; (reject|fail): ", r.detail))
            if refused and below and r.cause not in ("hook-missing", "needs-setup"):
                head = f"needs {needs}; this kernel is {kernel.version}"
                if s.expands and r.status != "skip":  # the expected skip, as declared ones
                    r.detail = f"{head}; {r.status}: {r.detail}"
                    r.status, r.expected = "skip", "skip"
                else:
                    r.detail = f"{head}: {r.detail}"
            elif s.expands and below and r.status == "pass":
                r.detail += (f"; passes on {kernel.version}, below its predicted minimum "
                             f"{top.min_kernel}: a backport of {needs}")
            elif r.status in ("reject", "fail") and not below and \
                    r.cause not in ("hook-missing", "needs-setup", "behaviour-failure"):
                r.unexplained = True


def _classify(results: list[Result]) -> None:
    for r in results:
        r.cause = classify(r)


def object_rows(subjects: list[Subject], results: list[Result],
                sections: dict[str, str]) -> list[Result]:
    """Program rows of each checked object marked as such (with their hooks named, and
    placeholder targets as needing set-up), and the object's own row above them."""
    out = list(results)
    for s in subjects:
        if not s.expands:
            continue
        rows = {r.subject[len(s.id) + 1:]: r for r in results if r.subject.startswith(s.id + ":")}
        if not rows:
            continue
        setup = s.task.get("setup") or {}
        pset = setup.get("programs", {})
        for name, r in rows.items():
            r.row, r.parent, r.expected = "program", s.id, "info"  # the object row decides
            r.section = r.section or sections.get(r.subject, "")
            _name_hook(r, bool(pset.get(name, {}).get("target")))
        secs = {n: r.section for n, r in rows.items()}
        optional = {n for n, r in rows.items()
                    if r.section.startswith("?") or pset.get(n, {}).get("optional")}
        row = verdict.object_row(s.id, next(iter(rows.values())).kernel, rows, secs,
                                 setup.get("alternatives", []), optional)
        row.cause = row.cause or classify(row)
        first = min(out.index(r) for r in rows.values())
        out.insert(first, row)
    return out


def _name_hook(r: Result, target_given: bool) -> None:
    """A missing hook named in the detail; a placeholder one (dummy_file_read) needs the
    target its loader would give, so the cell has no verdict until a set-up file does."""
    what = verdict.hook(r.section)
    if r.cause != "hook-missing" or what is None:
        return
    kind, name = what
    if verdict.is_placeholder(name) and not target_given:
        r.status, r.cause = "setup", "needs-setup"
        prog = r.subject.rpartition(":")[2]
        r.detail = (f"attach target '{name}' is a placeholder its loader replaces at run time; "
                    f"give the real one in a set-up file ([programs.{prog}] target = \"...\"): "
                    f"{r.detail}")
    else:
        r.detail = f"hook missing: {kind} '{name}' is not in this kernel: {r.detail}"


def _attach_splats(results: list[Result], events: list[dict], console: str,
                   info: KernelInfo) -> None:
    """Kernel warnings, sanitizer and lockdep reports on the console, shown in the cell of
    the check that was running when they were printed (even when it passed), and in the
    kernel's notes."""
    starts = sorted((float(ev["uptime"]), ev["subject"]) for ev in events
                    if ev.get("event") == "start" and ev.get("uptime") is not None)
    by_subject = {r.subject: r for r in results}
    for sp in find_splats(console):
        during = None
        if sp.seconds is not None:
            during = next((sub for t, sub in reversed(starts) if t <= sp.seconds), None)
        info.notes.append(f"console: {sp.headline}" + (f" (during {during})" if during else ""))
        r = by_subject.get(during) if during else None
        if r is not None:
            r.detail = f"{r.detail}; the kernel logged: {sp.headline}"
            r.console = (r.console + "\n" if r.console else "") + sp.excerpt


@dataclass(frozen=True)
class _Why:
    """Why a cell has no verdict, from how the VM ended."""

    crash: str | None
    outcome: VMOutcome
    booted: bool
    finished: bool  # the agent wrote its final 'done' event
    console: str
    console_path: Path | None

    def result(self, sid: str, kid: str, started: bool) -> Result:
        where = f" (console: {self.console_path})" if self.console_path else ""
        when = "while this check ran" if started else "before this check ran"
        if self.crash:
            return Result(sid, kid, "crash", "run",
                          f"kernel crashed {when}: {crash_headline(self.crash)}{where}",
                          console=self.crash)
        if self.outcome.interrupted:
            return Result(sid, kid, "error", "run", f"run interrupted {when}")
        if self.outcome.stalled:
            return Result(sid, kid, "timeout", "run", f"the guest stopped making progress {when} "
                          f"(no event, heartbeat or console output for the stall limit); "
                          f"stopped after {self.outcome.seconds:.0f}s{where}")
        if self.outcome.timed_out:
            return Result(sid, kid, "timeout", "run", f"VM still running after "
                          f"{self.outcome.seconds:.0f}s; stopped {when}{where}")
        if not self.booted:
            tail = " | ".join(self.console.strip().splitlines()[-3:])[:300]
            return Result(sid, kid, "error", "run", f"the guest agent never started{where}: "
                          f"{tail}", console=self.console[-4000:])
        agent = "" if self.finished else " (the guest agent did not finish: the VM died)"
        return Result(sid, kid, "error", "run",
                      f"the VM ended {when}, without a verdict{agent}{where}")


BOOT_ALLOWANCE = 300.0  # seconds for boot, the feature probe and preloading under TCG
STALL = {"tcg": 60.0, "kvm": 30.0}  # seconds without any sign of life: a hung guest


def stall_limit(config: Config, accel: str) -> float:
    return config.stall_timeout or STALL.get(accel, 60.0)


def task_paths(tasks: list[dict]) -> list[Path]:
    """Host paths a guest needs to read for these tasks."""
    keys = ("path", "object", "check", "script", "cwd")
    return [Path(t[k]) for t in tasks for k in keys if t.get(k)]


def check_hidden(hide: tuple[str, ...], needed: list[Path]) -> list[str]:
    """The paths to hide from the guest, refused when one would hide what a check needs
    (the harness itself, the run directory, an object, a check script)."""
    out = []
    for h in hide:
        hp = Path(h).expanduser().resolve()
        if hp == Path("/"):
            raise ConfigError("hide_paths cannot hide '/': the guest runs from the host root")
        clash = next((n for n in needed if n.resolve() == hp or hp in n.resolve().parents), None)
        if clash is not None:
            raise ConfigError(f"hide_paths: hiding {h} would hide {clash}, which the checks need; "
                              "hide a narrower path, or keep your checks outside it")
        out.append(str(hp))
    return out


def vm_budget(tasks: list[dict], check_timeout: float) -> float:
    """How long a VM may run: the boot allowance plus every task's own time limit."""
    return BOOT_ALLOWANCE + sum(float(t.get("timeout", check_timeout)) for t in tasks)


def guest_command(job_path: Path, pythonpath: Path, guest_python: str = GUEST_PYTHON) -> list[str]:
    """The agent under the guest's system python3; pythonpath holds only the harness
    (paths.guest_pythonpath), never the site-packages of the environment it came from."""
    python = guest_python if Path(guest_python).exists() else sys.executable
    return ["env", f"PYTHONPATH={pythonpath}", "PYTHONDONTWRITEBYTECODE=1", python,
            "-m", "harness.guest", str(job_path)]


def run_one(
    kernel: KernelSpec,
    subjects: list[Subject],
    config: Config,
    backend: Backend,
    workdir: Path,
    listener: Listener,
    accel: str,
    cpus: int = 0,
) -> KernelRun:
    """One kernel's VM with every subject in it; cpus 0: as many as a lone guest gets."""
    cpus = cpus or plan_vms(accel, 1, config).cpus
    safe = kernel.id.replace("/", "_")
    rundir = workdir / safe
    if rundir.exists():
        shutil.rmtree(rundir)
    rundir.mkdir(parents=True)
    events_path = events_file(rundir)
    job = {
        "protocol": 1,
        "kernel_id": kernel.id,
        "results": str(events_path),
        "check_timeout": config.check_timeout,
        # a VM's guest is set up by the agent (bpffs, ...); the local backend's "guest"
        # is this machine, which is left alone
        "setup": backend.name != "local",
        "tasks": [dict(s.task, subject=s.id) for s in subjects if s.compile_error is None],
        "hide": check_hidden(config.hide_paths, [
            PACKAGE_PARENT / "harness", guest_pythonpath(config.cache_dir), workdir, Path.cwd(),
            *task_paths([s.task for s in subjects])]),
    }
    # the job and the console stay outside the directory the guest can write
    job_path = workdir / f"{safe}.job.json"
    job_path.write_text(json.dumps(job, indent=1))
    network = any(s.network for s in subjects)
    vm_timeout = config.vm_timeout or vm_budget(job["tasks"], config.check_timeout)
    append: list[str] = []
    for s in subjects:
        append += [p for p in s.boot_params if p not in append]
    with Cache(config.cache_dir).shared(in_use_name(kernel.release)):  # prune keeps it
        booted = _boot(kernel, rundir, job_path, config, backend, listener, accel, network,
                       vm_timeout, tuple(append), len(subjects), cpus)
    outcome, accel, req, retries, events = booted
    console_path = req.console_path
    console = console_path.read_text(errors="replace") if console_path.exists() else ""
    info, results = collect(kernel, subjects, events, console, outcome, console_path)
    info.accel, info.cpus = accel, cpus
    info.notes += retries
    done = sum(r.meets_expectation for r in results)
    listener(VMEnded(kernel.id, outcome.seconds, done, len(results)))
    return KernelRun(kernel, info, results, console_path)


def _boot(kernel: KernelSpec, rundir: Path, job_path: Path, config: Config, backend: Backend,
          listener: Listener, accel: str, network: bool, vm_timeout: float,
          append: tuple[str, ...], checks: int, cpus: int
          ) -> tuple[VMOutcome, str, VMRequest, list[str], list[dict]]:
    """One VM run of the job. A KVM boot that never reaches the agent is retried under
    TCG; a kernel that crashes before the agent starts (seen under TCG: an int3 Oops while
    the kernel patches its own code at boot) is booted once more. Returns the outcome, the
    accelerator used, the request, notes on what was retried and the guest's events."""
    attempts = [accel, "tcg"] if accel == "kvm" else [accel]
    notes: list[str] = []
    i = 0
    while True:
        attempt_accel = attempts[i]
        listener(BootStarted(kernel.id, kernel.release, attempt_accel, checks))
        command = guest_command(job_path, guest_pythonpath(config.cache_dir))
        req = VMRequest(kernel.id, kernel.vmlinuz, rundir, tuple(command),
                        accel=attempt_accel, memory=config.memory, cpus=cpus,
                        network=network, timeout=vm_timeout, append=append,
                        stall=stall_limit(config, attempt_accel),
                        root_cache=config.root_cache)
        req.events_path.unlink(missing_ok=True)
        follower = _Follower(req.events_path, kernel.id, listener)
        follower.start()
        try:
            outcome = backend.run(req)
        finally:
            events = follower.finish()
        booted = any(ev.get("event") == "boot" for ev in events)
        if booted or outcome.interrupted:
            return outcome, attempt_accel, req, notes, events
        console = req.console_path.read_text(errors="replace") if req.console_path.exists() else ""
        crash = find_crash(console)
        if crash and not any(n.startswith("crashed while booting") for n in notes):
            notes.append(f"crashed while booting, before the agent started "
                         f"({crash_headline(crash)}); booted once more")
            attempts.insert(i + 1, attempt_accel)
        elif i == len(attempts) - 1:
            return outcome, attempt_accel, req, notes, events
        else:
            notes.append("KVM boot failed; retried under TCG")
        listener(Note(kernel.id, notes[-1]))
        i += 1


def run_kernels(
    kernels: list[KernelSpec],
    subjects: list[Subject],
    config: Config,
    backend: Backend,
    workdir: Path,
    listener: Listener,
) -> tuple[list[KernelRun], bool, Plan]:
    accel = choose_accel(config.accel) if backend.name == "vng" else "tcg"
    plan = plan_vms(accel, len(kernels), config)
    listener(RunPlanned("", len(kernels), plan.jobs, plan.cpus, plan.accel, plan.why))
    workdir.mkdir(parents=True, exist_ok=True)
    runs: list[KernelRun] = []
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=plan.jobs)
    futures = [pool.submit(run_one, k, subjects, config, backend, workdir, listener, accel,
                           plan.cpus) for k in kernels]
    try:
        for k, f in zip(kernels, futures, strict=True):
            while True:
                try:
                    runs.append(f.result())
                    break
                except KeyboardInterrupt:
                    # stop every VM; the workers then collect what their guests wrote
                    interrupted = True
                    LIVE.kill_all()
                except Exception as e:  # a harness bug on one kernel: the others go on
                    runs.append(_failed_run(k, subjects, e))
                    break
    finally:
        pool.shutdown(wait=not LIVE.stopping.is_set(), cancel_futures=True)
    return runs, interrupted, plan


def plan_vms(accel: str, kernels: int, config: Config) -> Plan:
    """How many VMs at once and how many vCPUs each, for this machine (vm.plan)."""
    try:
        guest_mb = memory_mb(config.memory)
    except ValueError as e:
        raise ConfigError(f"memory: {e}") from e
    return choose_plan(accel, kernels, host_cores(), available_memory_mb(), guest_mb,
                       jobs=config.jobs, cpus=config.cpus)


def _failed_run(kernel: KernelSpec, subjects: list[Subject], e: Exception) -> KernelRun:
    """Every cell of a kernel whose worker raised: an error naming the exception."""
    info = KernelInfo(id=kernel.id, release=kernel.release, version=str(kernel.version),
                      origin=kernel.origin, pinned=kernel.pinned)
    why = f"harness error on kernel {kernel.id}: {type(e).__name__}: {e}"
    results = [Result(s.id, kernel.id, "error", "run", why, expected=_expected(s, kernel),
                      cause="harness-error") for s in subjects]
    return KernelRun(kernel, info, results)


_HELD: list[int] = []  # lock fds of this process's run directories, held until exit


def _in_use(d: Path) -> bool:
    """True when another live process holds this run directory's lock."""
    lock = d / ".lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def new_workdir(config: Config, keep: int = 10) -> Path:
    """A fresh run directory; the oldest ones beyond `keep` go, unless still in use."""
    base = config.cache_dir / "runs"
    base.mkdir(parents=True, exist_ok=True)
    runs = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[: max(0, len(runs) - keep + 1)]:
        if not _in_use(old):
            shutil.rmtree(old, ignore_errors=True)
    d = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=base))
    fd = os.open(d / ".lock", os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _HELD.append(fd)
    return d
