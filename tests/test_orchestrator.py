"""From guest events and VM outcomes to results, with the fake VM backend."""

from pathlib import Path

from harness.config import Config
from harness.kernels.model import KernelSpec
from harness.orchestrator import Subject, collect, run_kernels, run_one
from harness.results import Report
from harness.suite import ProgramDecl
from harness.versions import KernelVersion
from harness.vm.backend import FakeBackend, VMOutcome


def kspec(kid: str, ver: str) -> KernelSpec:
    return KernelSpec(kid, f"{ver}-amd64", KernelVersion.parse(ver), Path("/k/vmlinuz"), None)


def decl(min_kernel: str | None) -> ProgramDecl:
    return ProgramDecl(
        id="observability/loop", dir=Path("/p"), domain="observability", description="",
        kind="libbpf", source=None, check=None, script=None, attach="auto",
        min_kernel=KernelVersion.parse(min_kernel) if min_kernel else None,
        feature="bpf_loop", upstream="", boot_params=(), network=False,
    )


BOOT = {"event": "boot", "release": "5.10.0-amd64", "boot_seconds": 3.0,
        "features": {"prog_types": {"lsm": True}}, "loaders": {"libbpf": "1.1"}}


def test_rejection_below_minimum_is_a_rejection_as_expected():
    s = Subject("observability/loop", {"kind": "program"}, decl=decl("5.17"))
    ev = [BOOT, {"event": "start", "subject": s.id, "uptime": 4.5},
          {"event": "result", "subject": s.id, "status": "reject", "stage": "load",
           "detail": "x", "verifier": {"log": "invalid func unknown#181\n"}}]
    info, res = collect(kspec("5.10", "5.10.223"), [s], ev, "", VMOutcome(255, 5.0))
    assert info.boot_seconds == 3.0 and info.features["loaders"] == {"libbpf": "1.1"}
    # the first check's start says when the guest was ready
    assert info.features["prog_types"] == {"lsm": True} and info.ready_seconds == 4.5
    (r,) = res
    # the status says what happened; the expectation, beside it, says it was expected
    assert (r.status, r.expected, r.expected_by, r.meets_expectation) == \
        ("reject", "refusal", "declaration", True)
    assert r.expected_reason == "needs bpf_loop (>= 5.17); this kernel is 5.10.223"
    assert "unknown#181" in r.detail
    assert r.cause == "missing-helper"


def test_failure_at_or_above_minimum_is_a_failure_not_a_skip():
    s = Subject("observability/loop", {"kind": "program"}, decl=decl("5.17"))
    ev = [BOOT, {"event": "result", "subject": s.id, "status": "reject", "stage": "load",
                 "detail": "x"}]
    _, (r,) = collect(kspec("6.1", "6.1.150"), [s], ev, "", VMOutcome(255, 5.0))
    assert (r.status, r.meets_expectation) == ("reject", False)


def test_pass_below_minimum_says_the_declaration_is_wrong():
    s = Subject("observability/loop", {"kind": "program"}, decl=decl("6.1"))
    ev = [BOOT, {"event": "result", "subject": s.id, "status": "pass", "stage": "behavior",
                 "detail": "ok"}]
    _, (r,) = collect(kspec("5.10", "5.10.223"), [s], ev, "", VMOutcome(255, 5.0))
    assert not r.meets_expectation and "declaration" in r.detail


def test_crash_marks_unfinished_subjects_with_console_excerpt():
    a, b, c = (Subject(n, {"kind": "command"}) for n in ("a", "b", "c"))
    ev = [BOOT, {"event": "start", "subject": "a"},
          {"event": "result", "subject": "a", "status": "pass", "stage": "run"},
          {"event": "start", "subject": "b"}]
    console = "[1.0] ok\n[2.0] Kernel panic - not syncing: Fatal exception\n[2.1] Call Trace:\n"
    _, res = collect(kspec("6.1", "6.1.1"), [a, b, c], ev, console, VMOutcome(255, 9.0))
    st = {r.subject: r.status for r in res}
    assert st == {"a": "pass", "b": "crash", "c": "crash"}
    crashed = next(r for r in res if r.status == "crash")
    assert "Kernel panic" in crashed.detail and "Call Trace" in crashed.console


def test_object_subjects_expand_and_timeout_and_no_boot():
    o = Subject("x.bpf.o", {"kind": "object"}, expands=True)
    ev = [BOOT, {"event": "plan", "subject": "x.bpf.o", "programs": ["x.bpf.o:p1", "x.bpf.o:p2"]},
          {"event": "start", "subject": "x.bpf.o:p1"},
          {"event": "result", "subject": "x.bpf.o:p1", "status": "pass", "stage": "attach"}]
    _, res = collect(kspec("6.1", "6.1.1"), [o], ev, "", VMOutcome(None, 900, timed_out=True))
    assert [(r.subject, r.status, r.row) for r in res] == [
        ("x.bpf.o", "timeout", "object"), ("x.bpf.o:p1", "pass", "program"),
        ("x.bpf.o:p2", "timeout", "program")]
    assert res[0].detail.startswith("no verdict: program p2") and res[0].cause == "timeout"
    t = Subject("t", {"kind": "command"})
    _, res = collect(kspec("6.1", "6.1.1"), [t], [BOOT], "", VMOutcome(None, 900, timed_out=True))
    assert res[0].status == "timeout"
    _, res = collect(kspec("6.1", "6.1.1"), [t], [], "qemu: cannot boot\n", VMOutcome(1, 2))
    assert res[0].status == "error" and "never started" in res[0].detail
    assert "qemu: cannot boot" in res[0].detail


def test_compile_errors_fail_on_every_kernel_without_running():
    s = Subject("bad.bpf.c", {"kind": "object"}, compile_error="bad.bpf.c:3: error: boom", expands=True)
    _, res = collect(kspec("6.1", "6.1.1"), [s], [BOOT], "", VMOutcome(255, 1))
    assert (res[0].status, res[0].stage) == ("fail", "compile")


def test_run_kernels_with_fake_backend_one_vm_per_kernel(tmp_path):
    subjects = [Subject("a", {"kind": "command"}), Subject("b", {"kind": "command"})]

    def script(req):
        rel = "5.10.0-amd64" if req.kernel_id == "5.10" else "6.12.1-amd64"
        events = [dict(BOOT, release=rel)]
        for s in subjects:
            events.append({"event": "result", "subject": s.id, "status": "pass", "stage": "run"})
        return events, "boot ok\n"

    backend = FakeBackend(script)
    cfg = Config(cache_dir=tmp_path, jobs=2)
    runs, interrupted, plan = run_kernels([kspec("5.10", "5.10.0"), kspec("6.12", "6.12.1")],
                                          subjects, cfg, backend, tmp_path / "w", lambda *a: None)
    assert not interrupted
    assert sorted(r.kernel_id for r in backend.requests) == ["5.10", "6.12"]
    # two guests at once, each with its share of the cores, recorded for the results
    assert plan.jobs == 2 and not plan.auto
    assert {r.cpus for r in backend.requests} == {plan.cpus}
    report = Report(run=plan.to_dict())
    assert Report.from_dict(report.to_dict()).run["jobs"] == 2
    assert all(len(r.results) == 2 and all(x.status == "pass" for x in r.results) for r in runs)
    job = (tmp_path / "w" / "5.10.job.json").read_text()
    assert '"subject": "a"' in job
    report = Report(kernels=[r.info for r in runs], results=[x for r in runs for x in r.results])
    assert report.ok


def test_pruning_keeps_run_directories_in_use(tmp_path):
    import subprocess
    import sys

    from harness.kernels.cache import Cache

    code = ("import sys, time; from pathlib import Path; from harness.config import Config; "
            "from harness.kernels.cache import Cache; "
            "d = Cache(Path(sys.argv[1])).new_run_dir(); print(d, flush=True); "
            "time.sleep(float(sys.argv[2]))")

    def start(seconds: float) -> tuple[subprocess.Popen, Path]:
        p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(seconds)],
                             stdout=subprocess.PIPE, text=True)
        return p, Path(p.stdout.readline().strip())

    busy, busy_dir = start(60)
    try:
        finished = []
        for _ in range(3):
            p, d = start(0)
            p.wait()
            finished.append(d)
        mine = Cache(tmp_path).new_run_dir(keep=1)
        left = set((tmp_path / "runs").iterdir())
        # finished runs are pruned; a run still going is never pruned under its feet
        assert left == {busy_dir, mine}
    finally:
        busy.kill()
        busy.wait()


def test_missing_kernel_config_is_an_expected_refusal(tmp_path):
    from dataclasses import replace

    from harness.kernels.layout import parse_kconfig

    rel = "6.1.0-50-amd64"
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / f"config-{rel}").write_text(
        "CONFIG_BPF=y\n# CONFIG_FPROBE is not set\nCONFIG_NET_CLS_BPF=m\n")
    assert parse_kconfig((tmp_path / "boot" / f"config-{rel}").read_text()) == {
        "CONFIG_BPF": "y", "CONFIG_NET_CLS_BPF": "m"}
    k = KernelSpec("6.1", rel, KernelVersion.parse("6.1.176"), Path("/k"), tmp_path)
    d = replace(decl("5.18"), kernel_config=("CONFIG_FPROBE",))
    s = Subject("observability/kprobe_multi", {"kind": "program"}, decl=d)
    ev = [BOOT, {"event": "result", "subject": s.id, "status": "fail", "stage": "attach",
                 "detail": "Operation not supported"}]
    _, (r,) = collect(k, [s], ev, "", VMOutcome(255, 5.0))
    assert (r.status, r.expected, r.meets_expectation) == ("fail", "refusal", True)
    assert r.expected_reason == "kernel built without CONFIG_FPROBE"
    d2 = replace(d, kernel_config=("CONFIG_NET_CLS_BPF",))  # a module counts
    _, (r,) = collect(k, [Subject(s.id, s.task, decl=d2)], ev, "", VMOutcome(255, 5.0))
    assert r.status == "fail"


def test_a_vm_that_dies_inside_an_object_loses_no_program():
    """200 programs planned, QEMU killed after 5 verdicts: 195 cells are not OK, none lost
    (the run once said 'OK: 5 of 5')."""
    o = Subject("big.bpf.o", {"kind": "object"}, expands=True)
    progs = [f"big.bpf.o:p{i}" for i in range(200)]
    ev = [BOOT, {"event": "plan", "subject": "big.bpf.o", "programs": progs}]
    for p in progs[:5]:
        ev += [{"event": "start", "subject": p},
               {"event": "result", "subject": p, "status": "pass", "stage": "attach"}]
    ev.append({"event": "start", "subject": progs[5]})
    _, res = collect(kspec("6.1", "6.1.1"), [o], ev, "", VMOutcome(-9, 30.0))
    obj, *res = res  # the object's own row first: no verdict either
    assert obj.row == "object" and obj.status == "error" and not obj.meets_expectation
    assert len(res) == 200 and sum(r.status == "pass" for r in res) == 5
    running = next(r for r in res if r.subject == progs[5])
    assert running.status == "error" and "while this check ran" in running.detail
    assert "the guest agent did not finish" in running.detail
    later = next(r for r in res if r.subject == progs[6])
    assert "before this check ran" in later.detail
    assert not any(r.meets_expectation for r in Report(results=res).view(True).results[5:])


def test_an_object_that_never_started_gets_one_cell():
    o = Subject("x.bpf.o", {"kind": "object"}, expands=True)
    _, res = collect(kspec("6.1", "6.1.1"), [o], [BOOT], "", VMOutcome(None, 1.0, interrupted=True))
    assert [(r.subject, r.status) for r in res] == [("x.bpf.o", "error")]
    assert res[0].detail == "run interrupted before this check ran"


def test_guest_written_files_are_read_without_following_links(tmp_path):
    from harness.events import ignore
    from harness.orchestrator import _Follower
    from harness.vm.shared import read_guest_file

    secret = tmp_path / "host-secret"
    secret.write_text('{"event": "result", "subject": "stolen"}\n')
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "events.jsonl").symlink_to(secret)
    follower = _Follower(shared / "events.jsonl", "6.1", ignore)
    follower.start()
    assert follower.finish() == []
    (shared / "fifo").mkdir()
    assert read_guest_file(shared / "fifo") == ""
    big = shared / "big"
    big.write_text("x" * 5000)
    assert len(read_guest_file(big, limit=1000)) == 1000


def test_console_and_job_live_outside_the_guest_directory(tmp_path):
    seen = {}

    def script(req):
        seen["console"] = req.console_path
        seen["job"] = Path(req.command[-1])
        return [BOOT], "booted\n"

    k = kspec("6.1", "6.1.1")
    run = run_one(k, [Subject("t", {"kind": "command"})], Config(cache_dir=tmp_path),
                  FakeBackend(script), tmp_path / "w", lambda *a: None, "tcg")
    shared = tmp_path / "w" / "6.1"
    for p in (seen["console"], seen["job"], run.console_path):
        assert shared not in p.parents and p.exists()


def test_a_guest_that_stops_making_progress_is_stopped_within_the_stall_limit(tmp_path):
    """A 'guest' that reports its boot and then goes silent (SIGSTOP of QEMU looks the
    same from the host) is killed after the stall limit, not after the VM's whole budget."""
    import time as _time

    from harness.vm.backend import LocalBackend, VMRequest

    rundir = tmp_path / "shared"
    rundir.mkdir()
    cmd = ("sh", "-c", f"echo '{{\"event\": \"boot\"}}' >> {rundir}/events.jsonl; exec sleep 60")
    req = VMRequest("6.1", Path("/k"), rundir, cmd, timeout=120, stall=2.0)
    t0 = _time.monotonic()
    outcome = LocalBackend().run(req)
    took = _time.monotonic() - t0
    assert outcome.stalled and not outcome.timed_out and took < 10
    _, res = collect(kspec("6.1", "6.1.1"), [Subject("t", {"kind": "command"})],
                     [BOOT, {"event": "start", "subject": "t"}], "", outcome)
    assert res[0].status == "timeout" and "stopped making progress while this check ran" in res[0].detail


def test_heartbeats_keep_a_quiet_guest_alive(tmp_path):
    from harness.vm.backend import LocalBackend, VMRequest

    rundir = tmp_path / "shared"
    rundir.mkdir()
    beat = f"for i in 1 2 3 4 5 6; do echo '{{}}' >> {rundir}/events.jsonl; sleep 0.5; done"
    req = VMRequest("6.1", Path("/k"), rundir, ("sh", "-c", beat), timeout=60, stall=2.0)
    outcome = LocalBackend().run(req)
    assert not outcome.stalled and outcome.returncode == 0


def test_console_splats_show_in_the_cell_that_was_running_even_when_it_passed():
    a, b = Subject("a", {"kind": "command"}), Subject("b", {"kind": "command"})
    ev = [BOOT, {"event": "start", "subject": "a", "uptime": 10.0},
          {"event": "result", "subject": "a", "status": "pass", "stage": "run"},
          {"event": "start", "subject": "b", "uptime": 20.0},
          {"event": "result", "subject": "b", "status": "pass", "stage": "run"}]
    console = ("[   12.000001] ok\n"
               "[   21.500000] WARNING: CPU: 1 PID: 77 at kernel/bpf/core.c:1 bpf_x+0x1/0x2\n"
               "[   21.500002] RIP: 0010:bpf_x+0x1/0x2\n")
    info, res = collect(kspec("6.1", "6.1.1"), [a, b], ev, console, VMOutcome(255, 30.0))
    st = {r.subject: r for r in res}
    assert st["a"].status == st["b"].status == "pass"  # a warning is shown, not a crash
    assert "WARNING: CPU: 1 PID: 77" in st["b"].detail and "RIP: 0010" in st["b"].console
    assert "WARNING" not in st["a"].detail
    assert any("during b" in n for n in info.notes)


def test_hidden_paths_may_not_hide_what_the_checks_need(tmp_path):
    import pytest

    from harness.errors import ConfigError
    from harness.orchestrator import check_hidden

    needed = [tmp_path / "project" / "x.bpf.o", Path("/opt/harness")]
    assert check_hidden(("/root/.ssh", str(tmp_path / "secrets")), needed) == [
        str(Path("/root/.ssh").resolve()), str(tmp_path / "secrets")]
    with pytest.raises(ConfigError, match=r"would hide .*x\.bpf\.o"):
        check_hidden((str(tmp_path),), needed)
    with pytest.raises(ConfigError, match="cannot hide '/'"):
        check_hidden(("/",), needed)


def test_an_exception_in_one_kernels_worker_costs_only_that_kernel(tmp_path):
    subjects = [Subject("a", {"kind": "command"})]

    def script(req):
        if req.kernel_id == "5.10":
            raise RuntimeError("backend bug")
        return [BOOT, {"event": "result", "subject": "a", "status": "pass", "stage": "run"}], ""

    runs, interrupted, _ = run_kernels([kspec("5.10", "5.10.0"), kspec("6.12", "6.12.1")], subjects,
                                    Config(cache_dir=tmp_path, jobs=2), FakeBackend(script),
                                    tmp_path / "w", lambda *a: None)
    assert not interrupted and len(runs) == 2
    by = {r.kernel.id: r.results[0] for r in runs}
    assert by["6.12"].status == "pass"
    assert by["5.10"].status == "error" and "RuntimeError: backend bug" in by["5.10"].detail


def test_a_kernel_that_crashes_while_booting_is_booted_once_more(tmp_path):
    """Seen under TCG: 7.3 oopsed (int3 in sched_clock_cpu) before the agent started."""
    calls = []
    panic = "[1.5] Oops: int3: 0000 [#1] SMP NOPTI\n[1.5] Kernel panic - not syncing: Fatal exception\n"

    def script(req):
        calls.append(req)
        if len(calls) == 1:
            return [], panic
        return [BOOT, {"event": "result", "subject": "a", "status": "pass", "stage": "run"}], ""

    run = run_one(kspec("7.3", "7.3.4"), [Subject("a", {"kind": "command"})],
                  Config(cache_dir=tmp_path), FakeBackend(script), tmp_path / "w",
                  lambda *a: None, "tcg")
    assert len(calls) == 2 and run.results[0].status == "pass"
    assert any("crashed while booting" in n and "Oops: int3" in n for n in run.info.notes)

    calls.clear()
    run = run_one(kspec("7.3", "7.3.4"), [Subject("a", {"kind": "command"})],
                  Config(cache_dir=tmp_path), FakeBackend(lambda req: (calls.append(req), ([], panic))[1]),
                  tmp_path / "w2", lambda *a: None, "tcg")
    assert len(calls) == 2  # once more, not forever
    assert run.results[0].status == "crash"
