"""A stop signal at any moment of a real run (fetching, booting, checking, reporting):
within 5 s the command has exited, every process it started (vng, QEMU, a download's
tools) is gone, and its results file is written and readable (partial, and saying so,
unless the run had finished). SIGTERM is sent at moments spread over the whole run, 20
times on a cached kernel, and 3 more times while a kernel is being downloaded into an
empty cache."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.results import Report

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parent.parent.parent
OBJECT = REPO / "tests" / "data" / "getpid_events.bpf.c"
KERNEL = os.environ.get("EBPF_HARNESS_STOP_KERNEL", "6.1")
TRIES = 20
LIMIT = 5.0  # seconds from the signal to the exit
EARLIEST = 0.25  # seconds after the start: the first signal (see below)


def _cli() -> str:
    venv = REPO / ".venv" / "bin" / "ebpf-harness"
    return str(venv) if venv.exists() else shutil.which("ebpf-harness") or "ebpf-harness"


def _children(pid: int) -> set[int]:
    """Every process below pid, now."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


@dataclass
class Try:
    after: float  # seconds between the start and the signal
    exit_seconds: float
    code: int
    cells: int
    interrupted: bool
    left: list[int]
    seen: int  # processes below the command when the signal was sent


class EndedFirst(Exception):
    """The run finished before its signal was due: it was faster than the span measured."""

    def __init__(self, after: float, code: int, took: float) -> None:
        super().__init__(f"the run ended before its signal at {after:.1f}s (exit {code}, "
                         f"after {took:.1f}s): spread the signals over a shorter span")
        self.took = took


def _one(tmp: Path, after: float, env: dict[str, str]) -> Try:
    out = tmp / "r.json"
    start = time.monotonic()
    p = subprocess.Popen([_cli(), "check", str(OBJECT), "-k", KERNEL, "--json", str(out), "-q"],
                         cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: set[int] = set()
    end = time.monotonic() + after
    while time.monotonic() < end and p.poll() is None:
        seen |= _children(p.pid)  # everything it starts, even if it ends before the signal
        time.sleep(0.05)
    seen |= _children(p.pid)
    if p.poll() is not None:
        raise EndedFirst(after, p.returncode, time.monotonic() - start)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail(f"SIGTERM at {after:.1f}s: still running 60 s later")
    took = time.monotonic() - t0
    time.sleep(0.3)  # a SIGKILLed process is gone, or a zombie, once the kill lands
    left = sorted(pid for pid in seen if _alive(pid))
    for pid in left:  # never leave one behind for the next try
        with __import__("contextlib").suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert out.exists(), f"SIGTERM at {after:.1f}s: no results file; stderr: {err[-800:]!r}"
    rep = Report.read(out)
    return Try(after, took, p.returncode, len(rep.results), rep.interrupted, left, len(seen))


def _check(t: Try) -> None:
    what = f"SIGTERM at {t.after:.1f}s"
    assert t.code == 128 + signal.SIGTERM, f"{what}: exit {t.code}"
    assert t.exit_seconds <= LIMIT, f"{what}: exited after {t.exit_seconds:.1f}s"
    assert not t.left, f"{what}: processes left running: {t.left}"
    # partial results say so; a run that had finished wrote them in full
    assert t.interrupted or t.cells == 2, f"{what}: {t.cells} cells, not marked interrupted"


def test_a_stop_at_any_moment_of_a_cached_run(tmp_path: Path):
    env = dict(os.environ)
    spans = []
    for _ in range(2):  # the faster of two: a first run may do once-only work (a kernel's BTF
        first = time.monotonic()  # taken out of its image, an object compiled)
        whole = subprocess.run([_cli(), "check", str(OBJECT), "-k", KERNEL, "-q",
                                "--json", str(tmp_path / "whole.json")], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=600)
        spans.append(time.monotonic() - first)
        assert whole.returncode == 0, whole.stderr[-2000:]
    span = min(spans)
    rng = random.Random(int(os.environ.get("EBPF_HARNESS_STOP_SEED", "0")) or None)
    tries = []
    for i in range(TRIES):
        # one moment in each twentieth of the run (its last 0.7 s left out: a signal
        # after the exit cannot be sent), so every phase is hit. Not before 0.25 s: until
        # the interpreter has started (about 30 ms here, more on a loaded machine) no code
        # of ours runs, and SIGTERM's default action ends the process without results
        # A run faster than the span measured (a shared machine's load varies) ends before
        # a late signal: the span becomes that run's length and this moment is drawn again
        for attempt in range(3):
            slot = (span - 0.7) / TRIES
            after = max(EARLIEST, rng.uniform(i * slot, (i + 1) * slot))
            d = tmp_path / f"try{i}.{attempt}"
            d.mkdir()
            try:
                tries.append(_one(d, after, env))
                break
            except EndedFirst as e:
                if attempt == 2:
                    pytest.fail(str(e))
                span = min(span, e.took)
    report = "\n".join(f"  {t.after:5.1f}s -> exit {t.code} in {t.exit_seconds:.2f}s, "
                       f"{t.cells} cells, interrupted={t.interrupted}, {t.seen} processes "
                       f"seen, {len(t.left)} left" for t in tries)
    print(f"whole run {span:.1f}s; tries:\n{report}", file=sys.stderr)
    for t in tries:
        _check(t)
    # the spread reached the VM itself: most tries stopped a run with processes under it
    assert sum(t.seen > 0 for t in tries) >= TRIES // 2, report


def test_a_stop_while_a_kernel_downloads(tmp_path: Path):
    """An empty cache: the kernel is fetched from the archive when the signal lands."""
    tries = []
    for i, after in enumerate((0.8, 1.6, 2.4)):
        env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / f"cache{i}"))
        d = tmp_path / f"try{i}"
        d.mkdir()
        try:
            tries.append(_one(d, after, env))
        except EndedFirst as e:
            pytest.fail(str(e))
    for t in tries:
        _check(t)
        assert t.interrupted and t.cells == 0, t
