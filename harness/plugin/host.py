"""The plugin's host side: one VM per kernel, the guest's reports replayed locally."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Literal

import pytest

from ..config import load_config
from ..decision import PASS, Context, Expectation, Observation, decide
from ..errors import HarnessError
from ..events import BootStarted, Event
from ..guest.protocol import PYTEST_REPORTS
from ..kernels.cache import Cache
from ..kernels.model import KernelSpec
from ..orchestrator import GUEST_PYTHON, KernelRun, Subject, kernel_info, run_kernels
from ..report.diff import Diff, check_growth
from ..report.diff import render_term as render_diff
from ..report.outputs import Outputs, gate, write_outputs
from ..report.progress import Progress
from ..results import KernelInfo, Report, Result
from ..session import prepare_kernels
from ..versions import KernelVersion
from ..vm import guestroot
from ..vm.accel import choose_accel
from ..vm.backend import Backend, LocalBackend, VngBackend
from ..vm.shared import read_guest_file
from .selection import KernelRef

KID = "ebpf_kernel"
STATUS = "ebpf_status"  # a user property: the status the host gave a test its guest left


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


def outcome_status(outcome: str, when: str, host_status: str | None = None) -> tuple[str, str]:
    """A test report's status and stage; host_status: what the host recorded for a test
    its guest never finished (crash, timeout, error), carried as a user property."""
    if host_status:
        return host_status, "run"
    if outcome == "passed":
        return "pass", "behavior"
    if outcome == "skipped":
        return "skip", "run"
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
        self.unfinished: dict[str, tuple[str, str]] = {}  # kernel -> (status, why)
        self._pending: dict[str, list[pytest.Item]] = {}
        self.notes = Progress(quiet=False)  # a line per boot, on xdist workers too
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
            check_growth(opt("ebpf_max_insns_growth"), base is not None,
                         "--ebpf-max-insns-growth", "--ebpf-baseline")
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
        """Every kernel's tests not run yet, through the harness's one orchestrator
        (orchestrator.run_kernels: VMs side by side as vm.plan allows, Ctrl-C and stop signals,
        retries); the guests' reports are then read here, in the main thread. An xdist
        worker runs only the kernel it was given (each kernel's tests go to one worker,
        and xdist runs the workers side by side)."""
        wanted = [kid] if self.is_worker else list(self.by_id)
        todo = [k for k in wanted if k not in self.runs and self._items(k, session)]
        if not todo:
            return
        if self._workdir is None:
            self._workdir = Cache(self.cfg.cache_dir).new_run_dir()
        subjects = {k: [self._subject(k, self._items(k, session))] for k in todo}
        runs, interrupted, _ = run_kernels(
            [self.by_id[k] for k in todo], subjects, self.cfg, self._backend(),
            self._workdir, self._listener,
            guests=guests_at_once(len(todo), len(self.by_id),
                                  getattr(self.config, "workerinput", None)))
        for run in runs:
            self._take(run.kernel.id, run)
        if interrupted:
            raise KeyboardInterrupt

    def _listener(self, ev: Event) -> None:
        if isinstance(ev, BootStarted):
            tests = len(self._pending.get(ev.kernel, []))
            self.notes.note(f"ebpf-harness: booting {ev.kernel} for {tests} test(s)")

    def _backend(self) -> Backend:
        return LocalBackend() if self.config.getoption("ebpf_backend") == "local" else VngBackend()

    def _subject(self, kid: str, items: list[pytest.Item]) -> Subject:
        """A kernel's tests as one command for its guest: pytest with the guest side on."""
        from . import guest_nodeid

        kernel = self.by_id[kid]
        assert self._workdir is not None
        self._pending[kid] = items
        # read by the guest (the host tree is read-only there); never written by it
        guest_json = self._workdir / f"pytest-{kid.replace('/', '_')}.json"
        guest_json.write_text(json.dumps({"kernel": {
            "id": kid, "release": kernel.release, "version": str(kernel.version),
            "accel": choose_accel(self.cfg.accel) if self._backend().vm else "tcg"}}))
        # a guest of another architecture runs its own root's python3, where the plugin is
        # not installed (no entry point): it is named; its paths are mapped (vm.guestroot)
        foreign = self._backend().vm and guestroot.is_foreign(kernel.arch)
        python = [GUEST_PYTHON, "-m", "pytest", "-p", "harness.plugin"] if foreign \
            else [sys.executable, "-m", "pytest"]
        argv = [*python, "-p", "no:cacheprovider", "-p", "no:xdist",
                "-o", "addopts=", "--rootdir", str(self.config.rootpath),
                "--ebpf-guest", str(guest_json), "-q",
                *[guest_nodeid(it) for it in items]]
        limit = self.cfg.vm_timeout or 300 + 120 * len(items)
        task = {"kind": "command", "argv": argv, "cwd": str(self.config.invocation_params.dir),
                "command_timeout": limit, "timeout": limit + 30, "reads": [str(guest_json)],
                "env": {"PYTHONDONTWRITEBYTECODE": "1"}}
        return Subject(f"pytest ({len(items)} tests)", task)

    def _take(self, kid: str, run: KernelRun) -> None:
        """A kernel's run and its guest's test reports, replayed here."""
        self.runs[kid] = run
        self.infos[kid] = run.info
        self.unfinished[kid] = self._why_missing(run)
        reports = run.results_dir / PYTEST_REPORTS if run.results_dir else None
        for line in (read_guest_file(reports) if reports else "").splitlines():
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
                self.unfinished[kid] = ("error", f"collection failed inside kernel {kid}: "
                                                 f"{ev['longrepr']}")

    def _why_missing(self, run: KernelRun) -> tuple[str, str]:
        """(status, message) for a test the guest never finished, from the run's own
        verdict (orchestrator.collect read the console and how the VM ended)."""
        r = run.results[0] if run.results else None
        if r is None:
            return "error", f"the test did not run inside kernel {run.kernel.id}: no result"
        if r.status == "crash":
            return "crash", f"kernel crashed in {run.kernel.id} before this test finished:\n" \
                            f"{r.console or r.detail}"
        if r.status == "timeout":
            return "timeout", f"VM timed out in {run.kernel.id}: {r.detail}"
        return "error" if r.status == "error" else "fail", \
            f"the test did not run inside kernel {run.kernel.id}: {r.detail}\n{r.output}"

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
            status, msg = self.unfinished.get(kid, ("error", f"no report from kernel {kid}"))
            when: Literal["call", "teardown"] = "call" if "call" not in phases else "teardown"
            reps.append(pytest.TestReport(item.nodeid, item.location, {}, "failed", msg, when,
                                          [], 0.0, user_properties=[(STATUS, status)]))
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
        kid = next((str(v) for k, v in report.user_properties if k == KID), None)
        if kid is None:
            return
        if report.when != "call" and not (report.failed or report.skipped):
            return
        longrepr = str(report.longrepr) if report.longrepr else ""
        host = next((str(v) for k, v in report.user_properties if k == STATUS), None)
        status, stage = outcome_status(report.outcome, report.when, host)
        detail = failure_line(longrepr)
        if report.skipped and isinstance(report.longrepr, tuple):
            detail = str(report.longrepr[2])
        obs = Observation(base_nodeid(report.nodeid, kid), status, stage, detail,
                          duration=report.duration, output=longrepr[-4000:])
        # a skip is what the test asked for (a marker, min_kernel, pytest.skip): expected
        expect = Expectation("skip", "test", detail) if status == "skip" else PASS
        version = self.by_id[kid].version if kid in self.by_id else KernelVersion(0, 0, 0)
        r = decide(obs, Context(version, expectation=expect)).result(obs, kid)
        key = (r.subject, kid)
        self.cells[key] = worse_of(self.cells.get(key), r)

    def report(self) -> Report:
        report = Report(command=["pytest", *self.config.invocation_params.args])
        for k in self.kernels:
            info = self.infos.get(k.id) or kernel_info(k)
            report.kernels.append(info)
        report.results = list(self.cells.values())
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
