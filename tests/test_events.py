"""Typed events: guest lines become events, the host follows them while the VM runs, and
the terminal shows each verdict as it comes."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from harness.config import Config
from harness.events import (
    AgentUp,
    BootStarted,
    CheckFinished,
    ChecksPlanned,
    CheckStarted,
    RunPlanned,
    VMEnded,
    from_guest,
)
from harness.kernels.model import KernelSpec
from harness.orchestrator import Subject, run_one
from harness.report.progress import Progress
from harness.versions import KernelVersion
from harness.vm.backend import LocalBackend


def test_guest_lines_become_events():
    assert from_guest("6.1", {"event": "boot", "boot_seconds": 7.5}) == AgentUp("6.1", 7.5)
    assert from_guest("6.1", {"event": "plan", "subject": "o", "programs": ["o:a", "o:b"]}) == \
        ChecksPlanned("6.1", "o", 2)
    assert from_guest("6.1", {"event": "start", "subject": "o:a"}) == CheckStarted("6.1", "o:a")
    assert from_guest("6.1", {"event": "result", "subject": "o:a", "status": "reject",
                              "detail": "verifier: x", "duration": 0.2}) == \
        CheckFinished("6.1", "o:a", "reject", "verifier: x", 0.2)
    assert from_guest("6.1", {"event": "heartbeat"}) is None


def test_verdicts_reach_the_listener_while_the_vm_still_runs(tmp_path: Path):
    """A 'guest' (the local backend) reports a verdict, then works on for 3 s: the host
    hears of the verdict before the VM ends, not after."""
    heard: list[tuple[float, object]] = []
    kernel = KernelSpec("6.1", "6.1.0-t", KernelVersion.parse("6.1"), Path("/k"), None)
    rundir = tmp_path / "w" / "6.1"
    lines = [{"event": "boot", "boot_seconds": 1.0}, {"event": "start", "subject": "a"},
             {"event": "result", "subject": "a", "status": "pass", "stage": "run"}]
    script = "; ".join(f"echo '{json.dumps(x)}' >> {rundir}/events.jsonl" for x in lines)

    class Guest(LocalBackend):
        def run(self, req):
            cmd = ("sh", "-c", f"{script}; sleep 3")
            return super().run(type(req)(**{**req.__dict__, "command": cmd}))

    t0 = time.monotonic()
    run_one(kernel, [Subject("a", {"kind": "command"})], Config(cache_dir=tmp_path / "c"), Guest(),
            tmp_path / "w", lambda ev: heard.append((time.monotonic() - t0, ev)), "tcg")
    kinds = [type(ev).__name__ for _, ev in heard]
    assert kinds == ["BootStarted", "AgentUp", "CheckStarted", "CheckFinished", "VMEnded"]
    finished_at = next(t for t, ev in heard if isinstance(ev, CheckFinished))
    ended_at = next(t for t, ev in heard if isinstance(ev, VMEnded))
    assert ended_at - finished_at > 1.5  # heard live, not replayed at the end


def test_progress_lines_count_checks_and_show_failures():
    out = io.StringIO()
    p = Progress(stream=out)
    p.event(BootStarted("7.3", "7.3.4", "tcg", 2))
    p.event(ChecksPlanned("7.3", "x.bpf.o", 3))  # one object became three programs
    p.event(CheckFinished("7.3", "x.bpf.o:a", "pass", "ok", 0.5))
    p.event(CheckFinished("7.3", "x.bpf.o:b", "reject", "verifier: invalid func unknown#181", 0.2))
    p.event(VMEnded("7.3", 12.0, 1, 4))
    text = out.getvalue()
    assert "boot   7.3.4 (tcg), 2 check(s)" in text
    assert "[1/4] pass    x.bpf.o:a 0.5s" in text
    assert "[2/4] reject  x.bpf.o:b 0.2s: verifier: invalid func unknown#181" in text
    assert "done   1/4 as expected in 12s" in text
    quiet = io.StringIO()
    Progress(stream=quiet, quiet=True).event(BootStarted("7.3", "7.3.4", "tcg", 1))
    assert quiet.getvalue() == ""


def test_on_a_terminal_a_status_line_names_each_kernels_running_check():
    out = io.StringIO()
    p = Progress(stream=out, tty=True)
    p.event(RunPlanned("", 2, 2, 1, "tcg", "2 core(s), tcg: 1 core(s) per guest"))
    p.event(BootStarted("5.10", "5.10.0", "tcg", 2))
    p.event(BootStarted("7.3", "7.3.4", "tcg", 2))
    p.event(CheckStarted("5.10", "networking/tc_classify"))
    p.event(CheckStarted("7.3", "observability/exec_trace"))
    status = out.getvalue().rsplit("\r\x1b[2K", 1)[1]
    assert "5.10 0/2 networking/tc_classify 0s" in status
    assert "7.3 0/2 observability/exec_trace 0s" in status
    p.event(CheckFinished("5.10", "networking/tc_classify", "fail", "no packet", 1.0))
    text = out.getvalue()
    assert "2 kernel(s), 2 at a time, 1 vCPU(s) each" in text
    assert "[1/2] fail    networking/tc_classify 1.0s: no packet\n" in text
    p.event(VMEnded("5.10", 3.0, 1, 2))
    p.event(VMEnded("7.3", 3.0, 2, 2))
    assert out.getvalue().endswith("\r\x1b[2K")  # nothing left running: the status line goes
    # not a terminal (a CI log): lines only, no control characters
    plain = io.StringIO()
    q = Progress(stream=plain, tty=False)
    q.event(BootStarted("5.10", "5.10.0", "tcg", 1))
    q.event(CheckStarted("5.10", "a"))
    q.event(CheckFinished("5.10", "a", "pass", "", 0.1))
    assert "\x1b" not in plain.getvalue() and "\r" not in plain.getvalue()
