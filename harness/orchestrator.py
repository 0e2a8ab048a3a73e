"""Orchestration: one VM per kernel, every subject inside it, results into the model.

The pure part (``collect``) turns the guest's JSON lines plus the VM outcome into
Results; ``run_kernels`` does the side effects (job files, VMs, threads).
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .bpfobj import verdict
from .classify import classify
from .config import Config
from .decision import (
    Context,
    Expectation,
    Observation,
    Prediction,
    Splat,
    VMEnd,
    decide,
    expectation,
    unfinished,
)
from .errors import ConfigError
from .events import BootStarted, Listener, Note, RunPlanned, VMEnded, from_guest
from .guest.protocol import PROTOCOL, Job, Task
from .kernels.cache import Cache
from .kernels.model import KernelSpec
from .kernels.prune import in_use_name
from .paths import guest_pythonpath
from .predict import Forecast, forecast, prediction_dict
from .results import KernelInfo, Result
from .suite import ProgramDecl
from .versions import KernelVersion
from .vm import guestroot
from .vm.accel import choose_accel
from .vm.argv import foreign_accel
from .vm.backend import LIVE, Backend, VMOutcome, VMRequest, events_file
from .vm.console import crash_headline, find_crash, find_splats
from .vm.plan import Plan, available_memory_mb, host_cores, memory_mb
from .vm.plan import choose as choose_plan
from .vm.retry import Retries
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
    script: Any = None  # a bpftrace script's own declaration (harness.bpftrace.ScriptDecl)


@dataclass
class KernelRun:
    kernel: KernelSpec
    info: KernelInfo
    results: list[Result] = field(default_factory=list)
    console_path: Path | None = None
    results_dir: Path | None = None  # what the guest could write (never followed blindly)
    guest_root: guestroot.GuestRoot | None = None  # a foreign architecture's root it booted


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


def _context(subject: Subject, kernel: KernelSpec, program: str | None,
             splats: tuple[Splat, ...] = (), forecast: Forecast | None = None) -> Context:
    """What decides a cell besides what happened: the declaration, the prediction read
    from the object (the whole object for a bundled program, one program of a checked
    object), the set-up file's target and the console warnings during the check."""
    decl = subject.decl
    unmet = decl.unmet(kernel.version, kernel.config(), kernel.arch) if decl else None
    if unmet is None and subject.script is not None:
        unmet = subject.script.unmet(kernel.version, kernel.arch)
    setup = (subject.task.get("setup") or {}).get("programs", {})
    target = bool(setup.get(program, {}).get("target")) if program else False
    cell = f"{subject.id}:{program}" if program is not None else subject.id
    predicted = forecast.get(kernel.id, cell) if forecast is not None else None
    return Context(kernel=kernel.version, declared_unmet=unmet,
                   declaration=f"{decl.id}/program.toml" if decl else
                   (subject.script.source if subject.script is not None else ""),
                   prediction=_prediction(subject, kernel, program),
                   predicted_expectation=subject.expands, target_given=target, splats=splats,
                   manual_attach=predicted is not None and predicted.setup)


def _prediction(subject: Subject, kernel: KernelSpec, program: str | None) -> Prediction | None:
    names = [program] if program is not None else list(subject.needs)
    arch = kernel.arch
    minima = [m for n in names if n in subject.needs
              and (m := subject.needs[n].minimum_on(arch)[0])]
    if not minima:
        return None
    top = max(minima, key=KernelVersion.parse)
    # every need this kernel is older than (on its architecture), newest first
    newer = sorted({(v, n) for p in names if p in subject.needs for n in subject.needs[p].needs
                    if (v := n.version_on(arch)) is not None and kernel.version.below_line(v)},
                   key=lambda vn: (vn[0], vn[1].kind, vn[1].name), reverse=True)
    return Prediction(minimum=top, below=kernel.version.below_line(KernelVersion.parse(top)),
                      needs=", ".join(n.describe(arch) for _, n in newer))


def prepare_guest_roots(kernels: list[KernelSpec], config: Config, listener: Listener) -> None:
    """The guest root of every foreign architecture among the kernels, built now when
    missing (minutes, once per cache), so that no VM slot waits for one."""
    for arch in sorted({k.arch for k in kernels if guestroot.is_foreign(k.arch)}):
        spec = guestroot.spec_for(config, arch)
        found = guestroot.load(config.cache_dir, spec)
        if found is None or guestroot.lock_differences(found.packages, spec.locked):
            listener(Note("", f"building the {arch} guest root {spec.name} (Debian "
                              f"{spec.suite}, {len(spec.packages)} packages and what they "
                              "need; once per cache, minutes)"))
        guestroot.ensure(config, spec)


def kernel_info(kernel: KernelSpec) -> KernelInfo:
    """A column's record in the results, before its VM ran."""
    return KernelInfo(id=kernel.id, release=kernel.release, version=str(kernel.version),
                      origin=kernel.origin, pinned=kernel.pinned, arch=kernel.arch,
                      rt=kernel.rt)


def _owner(subjects: list[Subject], sid: str) -> tuple[Subject | None, str | None]:
    """The subject a result belongs to, and the program name when it is an object's."""
    for s in subjects:
        if s.id == sid:
            return s, None
        if s.expands and sid.startswith(s.id + ":"):
            return s, sid[len(s.id) + 1:]
    return None, None


def collect(
    kernel: KernelSpec,
    subjects: list[Subject],
    events: list[dict],
    console: str,
    outcome: VMOutcome,
    console_path: Path | None = None,
    forecast: Forecast | None = None,
) -> tuple[KernelInfo, list[Result]]:
    """Pure: guest events + VM outcome -> KernelInfo and one Result per cell, each decided
    once (harness/decision.py), then the object rows from their programs' results, each
    beside what was predicted for it before booting (harness/predict)."""
    info = kernel_info(kernel)
    info.vm_seconds = round(outcome.seconds, 2)
    observed: list[Observation] = []
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
        elif kind == "result" and ev.get("subject"):
            observed.append(Observation.from_event(ev))
            if isinstance(ev.get("bpftrace_info"), dict):  # what bpftrace --info said
                info.features.setdefault("bpftrace", ev["bpftrace_info"])
    seen = {o.subject for o in observed}
    splats = _splats(events, console, info)
    # every expected cell without a verdict gets one that says why, from what the VM did:
    # an object's programs are known from the guest's plan event, sent before the first
    crash = find_crash(console)
    started = {ev["subject"] for ev in events if ev.get("event") == "start"}
    info.ready_seconds = next((ev["uptime"] for ev in events if ev.get("event") == "start"
                               and isinstance(ev.get("uptime"), (int, float))), None)
    plans = {ev["subject"]: list(ev.get("programs", [])) for ev in events
             if ev.get("event") == "plan"}
    sections: dict[str, str] = {}
    for ev in events:
        if ev.get("event") == "plan" and isinstance(ev.get("sections"), dict):
            sections.update({f"{ev['subject']}:{n}": str(v) for n, v in ev["sections"].items()})
    end = VMEnd(crash=crash, crash_headline=crash_headline(crash) if crash else "",
                interrupted=outcome.interrupted, stalled=outcome.stalled,
                timed_out=outcome.timed_out, seconds=outcome.seconds, booted=booted,
                finished=any(ev.get("event") == "done" for ev in events),
                console_tail=console, console_path=str(console_path or ""))
    for s in subjects:
        if s.compile_error is not None:
            observed.append(Observation(s.id, "fail", "compile", s.compile_error))
            continue
        wanted = [s.id]
        if s.expands and s.id not in seen:
            wanted = plans.get(s.id) or wanted
        observed += [unfinished(sid, sid in started, end) for sid in wanted if sid not in seen]
    results = []
    for obs in observed:
        owner, program = _owner(subjects, obs.subject)
        if obs.section == "" and obs.subject in sections:
            obs = replace(obs, section=sections[obs.subject])
        ctx = (_context(owner, kernel, program, splats.get(obs.subject, ()), forecast) if owner
               else Context(kernel=kernel.version, splats=splats.get(obs.subject, ())))
        kind, parent = ("program", owner.id) if owner and program is not None else ("", "")
        results.append(decide(obs, ctx).result(obs, kernel.id, kind, parent))
    return info, with_predictions(object_rows(subjects, results), kernel.id, forecast)


def with_predictions(results: list[Result], kernel_id: str,
                     forecast: Forecast | None) -> list[Result]:
    """Each cell with the verdict predicted for it before booting and whether it held."""
    if forecast is not None:
        for r in results:
            r.prediction = prediction_dict(forecast.get(kernel_id, r.subject), r.status)
            if r.unexplained and r.prediction is not None and r.prediction["agrees"]:
                r.unexplained = False  # the kernel's own BTF explains what the table could not
    return results


def object_rows(subjects: list[Subject], results: list[Result]) -> list[Result]:
    """Each checked object's own row above its program rows (bpfobj.verdict.object_row),
    the program rows then shown for information."""
    out = list(results)
    for s in subjects:
        if not s.expands:
            continue
        rows = {r.subject[len(s.id) + 1:]: r for r in results if r.subject.startswith(s.id + ":")}
        if not rows:
            continue
        for r in rows.values():
            r.info = True  # the object row carries the verdict (Report.view swaps them)
        setup = s.task.get("setup") or {}
        pset = setup.get("programs", {})
        secs = {n: r.section for n, r in rows.items()}
        optional = {n for n, r in rows.items()
                    if r.section.startswith("?") or pset.get(n, {}).get("optional")}
        row = verdict.object_row(s.id, next(iter(rows.values())).kernel, rows, secs,
                                 setup.get("alternatives", []), optional)
        row.cause = row.cause or classify(row.status, row.stage, row.detail, row.verifier)
        first = min(out.index(r) for r in rows.values())
        out.insert(first, row)
    return out


def _splats(events: list[dict], console: str, info: KernelInfo) -> dict[str, tuple[Splat, ...]]:
    """Kernel warnings, sanitizer and lockdep reports on the console, by the check that
    was running when they were printed (even when it passed); each is also a kernel note."""
    starts = sorted((float(ev["uptime"]), ev["subject"]) for ev in events
                    if ev.get("event") == "start" and ev.get("uptime") is not None)
    out: dict[str, list[Splat]] = {}
    for sp in find_splats(console):
        during = None
        if sp.seconds is not None:
            during = next((sub for t, sub in reversed(starts) if t <= sp.seconds), None)
        info.notes.append(f"console: {sp.headline}" + (f" (during {during})" if during else ""))
        if during:
            out.setdefault(during, []).append(Splat(sp.headline, sp.excerpt))
    return {k: tuple(v) for k, v in out.items()}


BOOT_ALLOWANCE = 300.0  # seconds for boot, the feature probe and preloading under TCG
STALL = {"tcg": 60.0, "kvm": 30.0}  # seconds without any sign of life: a hung guest


def stall_limit(config: Config, accel: str) -> float:
    return config.stall_timeout or STALL.get(accel, 60.0)


def task_paths(tasks: list[dict]) -> list[Path]:
    """Host paths a guest needs to read for these tasks."""
    return [Path(t[k]) for t in tasks for k in guestroot.TASK_PATH_KEYS if t.get(k)] + \
        [Path(p) for t in tasks for p in t.get("reads", [])]


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
    forecast: Forecast | None = None,
) -> KernelRun:
    """One kernel's VM with every subject in it; cpus 0: as many as a lone guest gets."""
    cpus = cpus or plan_vms(accel, 1, config).cpus
    rundir = results_dir(workdir, kernel.id)
    if rundir.exists():
        shutil.rmtree(rundir)
    rundir.mkdir(parents=True)
    events_path = events_file(rundir)
    tasks = [Task(**{**s.task, "subject": s.id}) for s in subjects  # type: ignore[typeddict-item]
             if s.compile_error is None]
    job = Job(protocol=PROTOCOL, kernel_id=kernel.id, results=str(events_path),
              check_timeout=config.check_timeout, setup=backend.guest_setup, tasks=tasks,
              hide=check_hidden(config.hide_paths, [
                  PACKAGE_PARENT / "harness", guest_pythonpath(config.cache_dir), workdir,
                  Path.cwd(), *task_paths([dict(s.task) for s in subjects])]))
    # the job and the console stay outside the directory the guest can write; a guest on
    # a root of its own (vm.guestroot) reads its job from there, as every share it is given
    # counts against the kernel's init environment (vm.argv.MAX_SHARED_DIRS), and the
    # agent has read the job before any check runs
    job_path = workdir / f"{rundir.name}.job.json"
    placement = guestroot.place(
        config, kernel.arch, kernel.release, kernel.modules_dir, rundir,
        PACKAGE_PARENT / "harness", task_paths([dict(t) for t in tasks]),
        [h for h in (kernel.headers, kernel.headers_common) if h is not None],
    ) if backend.vm else None
    if placement is not None:
        job_path = rundir / "job.json"
    if placement is not None:
        job = guestroot.job_in_guest(job, placement.shares)
        accel = foreign_accel(accel, kernel.arch, platform.machine())
    job_path.write_text(json.dumps(job, indent=1))
    network = any(s.network for s in subjects)
    vm_timeout = config.vm_timeout or vm_budget([dict(t) for t in tasks], config.check_timeout)
    append: list[str] = []
    for s in subjects:
        append += [p for p in s.boot_params if p not in append]
    with Cache(config.cache_dir).shared(in_use_name(kernel.release)):  # prune keeps it
        booted = _boot(kernel, rundir, job_path, config, backend, listener, accel, network,
                       vm_timeout, tuple(append), len(subjects), cpus, placement)
    outcome, accel, req, retries, events = booted
    console_path = req.console_path
    console = console_path.read_text(errors="replace") if console_path.exists() else ""
    info, results = collect(kernel, subjects, events, console, outcome, console_path, forecast)
    info.accel, info.cpus = accel, cpus
    info.notes += retries
    done = sum(r.meets_expectation for r in results)
    listener(VMEnded(kernel.id, outcome.seconds, done, len(results)))
    if placement is not None:
        info.features["guest_root"] = placement.root.spec.name
    return KernelRun(kernel, info, results, console_path, rundir,
                     placement.root if placement is not None else None)


def results_dir(workdir: Path, kernel_id: str) -> Path:
    """The one directory a kernel's guest may write (its events, a command's files):
    named here only; a caller reads it from KernelRun.results_dir."""
    return workdir / kernel_id.replace("/", "_")


def _boot(kernel: KernelSpec, rundir: Path, job_path: Path, config: Config, backend: Backend,
          listener: Listener, accel: str, network: bool, vm_timeout: float,
          append: tuple[str, ...], checks: int, cpus: int,
          placement: guestroot.Placement | None = None,
          ) -> tuple[VMOutcome, str, VMRequest, list[str], list[dict]]:
    """One VM run of the job, tried again as vm.retry says. Returns the outcome, the
    accelerator used, the request, notes on what was retried and the guest's events."""
    retries = Retries(accel)
    attempt: str | None = accel
    while attempt is not None:
        listener(BootStarted(kernel.id, kernel.release, attempt, checks))
        job, pythonpath = (placement.command_paths(job_path) if placement else
                           (job_path, guest_pythonpath(config.cache_dir)))
        command = guest_command(job, pythonpath)
        req = VMRequest(kernel.id, kernel.vmlinuz, rundir, tuple(command),
                        accel=attempt, memory=config.memory, cpus=cpus,
                        network=network, timeout=vm_timeout, append=append,
                        stall=stall_limit(config, attempt), root_cache=config.root_cache,
                        **(placement.request() if placement else {}))
        req.events_path.unlink(missing_ok=True)
        follower = _Follower(req.events_path, kernel.id, listener)
        follower.start()
        try:
            outcome = backend.run(req)
        finally:
            events = follower.finish()
        booted = any(ev.get("event") == "boot" for ev in events)
        console = "" if booted or not req.console_path.exists() else \
            req.console_path.read_text(errors="replace")
        crash = find_crash(console)
        used, attempt = attempt, retries.after(attempt, booted, outcome.interrupted,
                                               crash_headline(crash) if crash else None)
        if attempt is not None:
            listener(Note(kernel.id, retries.notes[-1]))
    return outcome, used, req, retries.notes, events


def run_kernels(
    kernels: list[KernelSpec],
    subjects: list[Subject] | Mapping[str, list[Subject]],
    config: Config,
    backend: Backend,
    workdir: Path,
    listener: Listener,
    guests: int | None = None,
) -> tuple[list[KernelRun], bool, Plan]:
    """Every kernel's VM, side by side as vm.plan allows: the one orchestrator of the CLI
    and the pytest plugin. subjects: the same for every kernel, or by kernel id (the
    plugin's tests of that kernel). guests: how many guests share this machine (default:
    one per kernel; the plugin under pytest-xdist counts every worker's). Ctrl-C or a stop
    signal kills every VM; the runs then hold what their guests wrote, and the second
    value says the run was interrupted."""
    accel = choose_accel(config.accel) if backend.vm else "tcg"
    plan = plan_vms(accel, guests or len(kernels), config)
    workdir.mkdir(parents=True, exist_ok=True)
    if backend.vm:  # a root for each foreign architecture, built before any VM takes a slot
        prepare_guest_roots(kernels, config, listener)

    def of(k: KernelSpec) -> list[Subject]:
        return subjects.get(k.id, []) if isinstance(subjects, Mapping) else subjects

    runs: dict[str, KernelRun] = {}
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=max(1, min(plan.jobs, len(kernels))),
                              thread_name_prefix="kernel")
    futures: dict[str, Future[KernelRun]] = {}
    predicted: Forecast | None = None
    # a stop signal may land on any line below (it raises in this thread): from here on
    # it kills every VM, and every kernel then has a run, finished or not
    try:
        predicted = predict_cells(kernels, {k.id: of(k) for k in kernels}, config, listener,
                                  notes=backend.vm)
        listener(RunPlanned("", len(kernels), plan.jobs, plan.cpus, plan.accel, plan.why))
        for k in kernels:
            futures[k.id] = pool.submit(run_one, k, of(k), config, backend, workdir, listener,
                                        accel, plan.cpus, predicted)
        for k in kernels:
            runs[k.id] = _result_of(k, of(k), futures[k.id])
        LIVE.defer_stops()  # from here a stop signal waits for the results to be written
    except KeyboardInterrupt:
        LIVE.defer_stops()
        interrupted = True
        LIVE.kill_all()  # the workers' VMs end at once; they collect what their guests wrote
        for f in futures.values():
            f.cancel()  # kernels not started yet stay unstarted
        deadline = time.monotonic() + STOP_GRACE
        for k in kernels:
            runs.setdefault(k.id, _after_stop(k, of(k), futures.get(k.id), deadline))
            with_predictions(runs[k.id].results, k.id, predicted)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [runs[k.id] for k in kernels], interrupted, plan


STOP_GRACE = 3.0  # seconds the workers have to collect their killed VMs' results after a stop


def predict_cells(kernels: list[KernelSpec], subjects_of: Mapping[str, list[Subject]],
                  config: Config, listener: Listener, notes: bool = True) -> Forecast:
    """Every cell's verdict predicted from its kernel's own BTF, before any boot (a
    kernel's BTF is taken out of its image once per release, then parsed in about half a
    second). notes: say which kernels could not be read."""
    started = time.monotonic()
    fc = forecast(kernels, subjects_of, Cache(config.cache_dir))
    cells = sum(len(c) for c in fc.cells.values())
    if notes:
        for n in fc.notes:
            listener(Note("", n))
    if cells:
        refused = sum(p.refusal for c in fc.cells.values() for p in c.values())
        listener(Note("", f"predicted {cells} cell(s) on {len(fc.cells)} kernel(s) from "
                          f"their BTF in {time.monotonic() - started:.1f}s ({refused} "
                          "refusal(s) predicted)"))
    return fc


def predict_only(kernels: list[KernelSpec], subjects: list[Subject] | Mapping[str, list[Subject]],
                 config: Config, listener: Listener) -> list[KernelRun]:
    """Every cell predicted, none run (check --predict-only): status skip at stage
    'predict', the prediction beside it. A cell expected to pass that is predicted to be
    refused does not meet its expectation (the pre-flight gate); every other cell's
    expectation is the skip it is."""
    def of(k: KernelSpec) -> list[Subject]:
        return subjects.get(k.id, []) if isinstance(subjects, Mapping) else subjects

    fc = predict_cells(kernels, {k.id: of(k) for k in kernels}, config, listener)
    runs = []
    for k in kernels:
        results: list[Result] = []
        for s in of(k):
            programs = sorted(sid[len(s.id) + 1:] for sid in fc.cells.get(k.id, {})
                              if sid.startswith(s.id + ":")) if s.expands else []
            for cell, program in [(s.id, None), *((f"{s.id}:{n}", n) for n in programs)]:
                p = fc.get(k.id, cell)
                said = f"predicted {p.short()}" if p is not None else \
                    (f"not predicted: {s.compile_error}" if s.compile_error else
                     "not predicted (not a BPF object the harness reads)")
                obs = Observation(cell, "skip", "predict", f"not run (--predict-only); {said}")
                ctx = _context(s, k, program)
                exp = expectation(ctx, obs)
                if p is None or not (exp.expected == "pass" and p.refusal):
                    exp = Expectation("skip", "", "--predict-only: not run")
                kind, parent = ("program", s.id) if program is not None else (
                    "object" if s.expands else "", "")
                r = decide(obs, replace(ctx, expectation=exp)).result(obs, k.id, kind, parent)
                r.info = program is not None
                results.append(r)
        runs.append(KernelRun(k, kernel_info(k), with_predictions(results, k.id, fc)))
    return runs


def _result_of(k: KernelSpec, subjects: list[Subject], f: Future[KernelRun]) -> KernelRun:
    try:
        return f.result()
    except Exception as e:  # a harness bug on one kernel: the others go on
        return _failed_run(k, subjects, e)


def _after_stop(k: KernelSpec, subjects: list[Subject], f: Future[KernelRun] | None,
                deadline: float) -> KernelRun:
    """A kernel's run once the run was stopped: what its worker collected, if it finishes
    by the deadline (its VM was killed), else every cell interrupted. A second signal
    meanwhile is ignored: the first one is being honoured."""
    while f is not None and not f.cancelled():
        try:
            return f.result(timeout=max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt:
            continue
        except TimeoutError:
            break
        except Exception as e:
            return _failed_run(k, subjects, e)
    end = VMEnd(crash=None, crash_headline="", interrupted=True, stalled=False,
                timed_out=False, seconds=0.0, booted=False, finished=False, console_tail="")
    return _run_without_vm(k, subjects, lambda sid: unfinished(sid, False, end))


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
    why = f"harness error on kernel {kernel.id}: {type(e).__name__}: {e}"
    return _run_without_vm(kernel, subjects, lambda sid: Observation(sid, "error", "run", why))


def _run_without_vm(kernel: KernelSpec, subjects: list[Subject],
                    observe: Callable[[str], Observation]) -> KernelRun:
    """A kernel's run when its VM gave nothing: each subject's cell decided from what
    `observe` says of it."""
    results = [decide(obs, _context(s, kernel, None)).result(obs, kernel.id)
               for s in subjects for obs in [observe(s.id)]]
    return KernelRun(kernel, kernel_info(kernel), results)
