"""The plugin's host side: one VM per kernel, the guest's reports replayed locally."""

from __future__ import annotations

import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ..classify import classify
from ..config import load_config
from ..errors import HarnessError
from ..events import BootStarted, Event
from ..kernels.model import KernelSpec
from ..report.diff import Diff
from ..report.diff import render_term as render_diff
from ..report.outputs import Outputs, gate, write_outputs
from ..report.progress import Progress
from ..results import KernelInfo, Report, Result
from ..runner import KernelRun, Subject, new_workdir, plan_vms, run_one
from ..session import prepare_kernels
from ..vm.accel import choose_accel
from ..vm.backend import LIVE, Backend, LocalBackend, VngBackend
from ..vm.console import find_crash
from ..vm.shared import read_guest_file
from .selection import KernelRef

KID = "ebpf_kernel"


def base_nodeid(nodeid: str, kid: str) -> str:
    """'t.py::test_x[a-6.12]' -> 't.py::test_x[a]'; 't.py::test_x[6.12]' -> 't.py::test_x'."""
    nodeid = nodeid.split("@kernel-", 1)[0]
    m = re.match(r"^(.*)\[(.*)\]$", nodeid)
    if not m:
        return nodeid
    params = m.group(2)
    if params == kid:
        return m.group(1)
    if params.endswith("-" + kid):
        return f"{m.group(1)}[{params[: -len(kid) - 1]}]"
    return nodeid


def failure_line(longrepr: str) -> str:
    """The line of a failure that says what went wrong: pytest's first 'E' line."""
    lines = longrepr.strip().splitlines()
    for ln in lines:
        if ln.startswith("E "):
            return ln[1:].strip()[:300]
    return lines[-1][:300] if lines else ""


def outcome_status(outcome: str, when: str, longrepr: str) -> tuple[str, str]:
    if outcome == "passed":
        return "pass", "behavior"
    if outcome == "skipped":
        return "skip", "run"
    if longrepr.startswith("kernel crashed"):
        return "crash", "run"
    if longrepr.startswith("VM timed out"):
        return "timeout", "run"
    return "fail", "behavior" if when == "call" else "run"


class HostSide:
    def __init__(self, config: pytest.Config, ids: str | None) -> None:
        self.config = config
        self.is_worker = hasattr(config, "workerinput")
        accel = config.getoption("ebpf_accel")
        lock = config.getoption("ebpf_lock")
        self.cfg = load_config(Path(config.rootpath)).with_overrides(
            accel=accel, lock=config.invocation_params.dir / lock if lock else None)
        progress = Progress(quiet=self.is_worker)
        try:
            self.kernels: list[KernelSpec] = prepare_kernels(ids, self.cfg, progress)
        except HarnessError as e:
            raise pytest.UsageError(f"ebpf-harness: {e}") from e
        self.refs = [KernelRef(k.id, k.release, k.version) for k in self.kernels]
        self.by_id = {k.id: k for k in self.kernels}
        self.reports: dict[str, list[pytest.TestReport]] = {}
        self.runs: dict[str, KernelRun] = {}
        self.unfinished_why: dict[str, str] = {}
        self.cells: dict[tuple[str, str], Result] = {}  # (test, kernel) -> one result
        self.infos: dict[str, KernelInfo] = {}
        self._workdir: Path | None = None
        self.outputs = self._outputs()
        self.gate: Diff | None = None

    def _outputs(self) -> Outputs:
        opt = self.config.getoption

        def path(name: str) -> Path | None:
            v = opt(name)
            return Path(v) if v else None

        try:
            base = path("ebpf_baseline")
            return Outputs(json=path("ebpf_json"), md=path("ebpf_md"), html=path("ebpf_html"),
                           baseline=Report.read(base) if base else None,
                           max_insns_growth=opt("ebpf_max_insns_growth"))
        except HarnessError as e:
            raise pytest.UsageError(f"ebpf-harness: {e}") from e

    # -- running a kernel's tests in its VM ----------------------------------------------
    def _items(self, kid: str, session: pytest.Session) -> list[pytest.Item]:
        from . import kernel_id_of

        return [it for it in session.items
                if kernel_id_of(it) == kid and it.get_closest_marker("skip") is None]

    def _run_kernels(self, session: pytest.Session, kid: str) -> None:
        """Every kernel's tests not run yet, its VMs side by side as the machine allows
        (vm.plan: one single-vCPU guest per core under TCG); the guests' reports are then
        read here, in the main thread. An xdist worker runs only the kernel it was given
        (each kernel's tests go to one worker, and xdist runs the workers side by side)."""
        wanted = [kid] if self.is_worker else list(self.by_id)
        todo = [k for k in wanted if k not in self.runs and self._items(k, session)]
        if not todo:
            return
        if self._workdir is None:
            self._workdir = new_workdir(self.cfg)
        accel = choose_accel(self.cfg.accel) if self._backend().name == "vng" else "tcg"
        plan = plan_vms(accel, guests_at_once(len(todo), len(self.by_id),
                                              getattr(self.config, "workerinput", None)),
                        self.cfg)
        pool = ThreadPoolExecutor(max_workers=min(plan.jobs, len(todo)),
                                  thread_name_prefix="kernel")
        futures = {kid: pool.submit(self._run_kernel, kid, self._items(kid, session), accel,
                                    plan.cpus) for kid in todo}
        try:
            for kid, f in futures.items():
                self._take(kid, *f.result())
        except KeyboardInterrupt:
            LIVE.kill_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _backend(self) -> Backend:
        return LocalBackend() if self.config.getoption("ebpf_backend") == "local" else VngBackend()

    def _run_kernel(self, kid: str, items: list[pytest.Item], accel: str,
                    cpus: int) -> tuple[KernelRun, Path]:
        """One kernel's VM running its tests (in a worker thread)."""
        from . import guest_nodeid

        kernel = self.by_id[kid]
        assert self._workdir is not None
        rundir = self._workdir / f"pytest-{kid.replace('/', '_')}"
        rundir.mkdir(parents=True, exist_ok=True)
        # the VM's one writable directory is made (afresh) by run_one under rundir/vm
        reports_path = rundir / "vm" / kid.replace("/", "_") / "reports.jsonl"
        guest = {"kernel": {"id": kid, "release": kernel.release, "version": str(kernel.version),
                            "accel": accel}, "reports": str(reports_path)}
        (rundir / "guest.json").write_text(json.dumps(guest))
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
                "-o", "addopts=", "--rootdir", str(self.config.rootpath),
                "--ebpf-guest", str(rundir / "guest.json"), "-q",
                *[guest_nodeid(it) for it in items]]
        limit = self.cfg.vm_timeout or 300 + 120 * len(items)
        task = {"kind": "command", "argv": argv, "cwd": str(self.config.invocation_params.dir),
                "command_timeout": limit, "timeout": limit + 30,
                "env": {"PYTHONDONTWRITEBYTECODE": "1"}}
        subject = Subject(f"pytest ({len(items)} tests)", task)
        progress = Progress(quiet=False)

        def listener(ev: Event) -> None:
            if isinstance(ev, BootStarted):
                progress.note(f"ebpf-harness: booting {ev.kernel} for {len(items)} test(s)")
        run = run_one(kernel, [subject], self.cfg, self._backend(), rundir / "vm", listener,
                      accel, cpus)
        return run, reports_path

    def _take(self, kid: str, run: KernelRun, reports_path: Path) -> None:
        """A kernel's run and its guest's test reports, replayed here."""
        self.runs[kid] = run
        self.infos[kid] = run.info
        why = self._why_missing(run)
        for line in read_guest_file(reports_path).splitlines():
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if ev.get("type") == "report":
                rep = self.config.hook.pytest_report_from_serializable(config=self.config,
                                                                      data=ev["data"])
                if isinstance(rep.longrepr, list):
                    # a skip's (path, line, reason) comes back from JSON as a list; the
                    # terminal reporter wants the tuple (it asserted on -v/-rA before)
                    rep.longrepr = tuple(rep.longrepr)
                self.reports.setdefault(rep.nodeid, []).append(rep)
            elif ev.get("type") == "collect-error":
                why = f"collection failed inside kernel {kid}: {ev['longrepr']}"
        self.unfinished_why[kid] = why

    def _why_missing(self, run: KernelRun) -> str:
        r = run.results[0] if run.results else None
        console = run.console_path.read_text(errors="replace") if run.console_path and \
            run.console_path.exists() else ""
        crash = find_crash(console)
        if crash or (r and r.status == "crash"):
            return f"kernel crashed in {run.kernel.id} before this test finished:\n{crash or r.console}"
        if r and r.status == "timeout":
            return f"VM timed out in {run.kernel.id}: {r.detail}"
        detail = (r.detail + "\n" + r.output) if r else "no result"
        return f"the test did not run inside kernel {run.kernel.id}: {detail}"

    # -- replaying --------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        from . import guest_nodeid, kernel_id_of

        kid = kernel_id_of(item)
        if kid is None or kid not in self.by_id or item.get_closest_marker("skip") is not None:
            return None
        if kid not in self.runs:
            self._run_kernels(item.session, kid)
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reps = list(self.reports.get(guest_nodeid(item), []))
        phases = {r.when for r in reps}
        if "teardown" not in phases:
            # the guest stopped inside this test (a crash, a hang): fail the phase it was in
            msg = self.unfinished_why.get(kid, f"no report from kernel {kid}")
            when = "call" if "call" not in phases else "teardown"
            reps.append(pytest.TestReport(item.nodeid, item.location, {}, "failed", msg, when,
                                          [], 0.0))
        for rep in reps:
            rep.nodeid = item.nodeid
            if (KID, kid) not in rep.user_properties:
                rep.user_properties.append((KID, kid))
            ihook.pytest_runtest_logreport(report=rep)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    # -- the results model -----------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        kid = next((v for k, v in report.user_properties if k == KID), None)
        if kid is None:
            return
        if report.when != "call" and not (report.failed or report.skipped):
            return
        longrepr = str(report.longrepr) if report.longrepr else ""
        status, stage = outcome_status(report.outcome, report.when, longrepr)
        detail = failure_line(longrepr)
        if report.skipped and isinstance(report.longrepr, tuple):
            detail = str(report.longrepr[2])
        # a skip is what the test asked for (a marker, min_kernel, pytest.skip): expected
        r = Result(base_nodeid(report.nodeid, kid), kid, status, stage, detail,
                   expected="skip" if status == "skip" else "pass",
                   duration=report.duration, output=longrepr[-4000:])
        key = (r.subject, kid)
        self.cells[key] = worse_of(self.cells.get(key), r)

    def report(self) -> Report:
        report = Report(command=["pytest", *self.config.invocation_params.args])
        for k in self.kernels:
            info = self.infos.get(k.id) or KernelInfo(k.id, k.release, str(k.version), k.origin,
                                                      pinned=k.pinned)
            report.kernels.append(info)
        report.results = list(self.cells.values())
        for r in report.results:
            r.cause = classify(r)
        return report

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker:
            return
        report = self.report()
        try:
            self.written = write_outputs(report, self.outputs)
        except OSError as e:
            raise pytest.UsageError(f"ebpf-harness: cannot write a report: {e}") from e
        self.gate = gate(report, self.outputs)
        if self.gate is not None and self.gate.failed and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        kernels = ", ".join(f"{k.id}={k.release}" for k in self.kernels)
        terminalreporter.write_line(f"ebpf-harness: kernels {kernels}")
        for path in getattr(self, "written", []):
            terminalreporter.write_line(f"ebpf-harness: written {path}")
        if self.gate is not None:
            for line in render_diff(self.gate).splitlines():
                terminalreporter.write_line(f"ebpf-harness: {line}")


def guests_at_once(todo: int, kernels: int, workerinput: dict[str, Any] | None) -> int:
    """How many guests run side by side: this process's kernels, or under pytest-xdist
    (workerinput) one per worker, each worker running its own kernel's VM."""
    if workerinput is None:
        return max(1, todo)
    return max(1, min(int(workerinput.get("workercount", 1)), kernels))


_RANK = {"pass": 0, "skip": 1}


def worse_of(a: Result | None, b: Result) -> Result:
    """One cell per test and kernel, from its phases: the worst phase decides (a teardown
    error fails a passing call); durations add up."""
    if a is None:
        return b
    keep, other = (b, a) if _RANK.get(b.status, 2) > _RANK.get(a.status, 2) else (a, b)
    keep.duration = (keep.duration or 0.0) + (other.duration or 0.0)
    return keep
