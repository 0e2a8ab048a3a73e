"""SIGTERM and SIGHUP end a run like Ctrl-C: every 'VM' killed, partial results written
and marked partial, exit status 128 + the signal. The local backend stands in for QEMU
(its process group is what gets killed), so no VM is needed here; tests/vm covers QEMU."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = r'''
import sys
from pathlib import Path
from harness.cli import _finish
from harness.config import Config
from harness.kernels.model import KernelSpec
from harness.report.outputs import Outputs
from harness.report.progress import Progress
from harness.orchestrator import Subject
from harness.session import execute
from harness.versions import KernelVersion
from harness.vm.backend import LocalBackend, stop_on_signals

stop_on_signals()
out = Path(sys.argv[1])
k = KernelSpec("6.1", "6.1.0-t", KernelVersion.parse("6.1"), Path("/k"), None)
marker = out.parent / "sleeper.pid"
cmd = ["sh", "-c", f"echo $$ > {marker}; exec sleep 300"]
subject = Subject("sleeper", {"kind": "command", "argv": cmd, "timeout": 400, "command_timeout": 350})
report = execute([k], [subject], Config(cache_dir=out.parent / "cache"), Progress(quiet=True),
                 backend=LocalBackend(), workdir=out.parent / "w")
sys.exit(_finish(report, Outputs(json=out)))
'''


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_run_kills_its_vms_and_keeps_partial_results(tmp_path: Path, sig):
    out = tmp_path / "r.json"
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], cwd=Path(__file__).parent.parent,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = tmp_path / "sleeper.pid"
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text().strip()):
        assert time.monotonic() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.1)
    sleeper = int(marker.read_text())
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, stderr
    d = json.loads(out.read_text())
    assert d["interrupted"] is True
    [r] = d["results"]
    assert (r["subject"], r["status"]) == ("sleeper", "error")
    assert r["detail"] == "run interrupted while this check ran"
    assert "results are partial" in stdout
    # the 'VM' (the local backend's process tree) is gone: no such process, or a zombie
    # waiting for an init that does not reap
    time.sleep(0.2)
    assert _state(sleeper) in (None, "Z")


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


WHILE_WRITING = r'''
import sys, time
from pathlib import Path
from harness import cli
from harness.config import Config
from harness.kernels.model import KernelSpec
from harness.report.outputs import Outputs
from harness.report.progress import Progress
from harness.orchestrator import Subject
from harness.session import execute
from harness.versions import KernelVersion
from harness.vm.backend import LocalBackend, stop_on_signals

stop_on_signals()
out = Path(sys.argv[1])
real = cli.write_outputs

def slow(report, outs):
    (out.parent / "writing").write_text("1")
    time.sleep(2)  # the signal lands now
    return real(report, outs)

cli.write_outputs = slow
k = KernelSpec("6.1", "6.1.0-t", KernelVersion.parse("6.1"), Path("/k"), None)
subject = Subject("true", {"kind": "command", "argv": ["true"], "timeout": 60, "command_timeout": 30})
report = execute([k], [subject], Config(cache_dir=out.parent / "cache"), Progress(quiet=True),
                 backend=LocalBackend(), workdir=out.parent / "w")
sys.exit(cli.after_deferred_stop(cli._finish(report, Outputs(json=out))))
'''


def test_a_signal_while_the_results_are_written_waits_for_them(tmp_path: Path):
    """Once the run is over, a stop is deferred: the results are written whole (and not
    marked partial: every cell has its verdict), then the exit status says it was stopped."""
    p = subprocess.Popen([sys.executable, "-c", WHILE_WRITING, str(tmp_path / "r.json")],
                         cwd=Path(__file__).parent.parent, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "writing").exists():
        assert time.monotonic() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, stderr
    assert "they were written in full" in stderr
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["interrupted"] is False and [r["status"] for r in d["results"]] == ["pass"]
