"""Fault injection on real kernels: faults are done to a real run from the host (QEMU
stopped or killed, the harness sent SIGTERM, the guest planting links) and each test
asserts the verdicts, that no QEMU is left, and a clear message. One short VM per
scenario, on the newest catalog line (EBPF_HARNESS_FAULT_KERNEL to change it).

Run alone with: pytest -m faults
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.config import load_config
from harness.vm.backend import _descendants

pytestmark = [pytest.mark.vm, pytest.mark.faults]

REPO = Path(__file__).resolve().parent.parent.parent
KERNEL = os.environ.get("EBPF_HARNESS_FAULT_KERNEL", "7.3")


def harness(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    exe = REPO / ".venv" / "bin" / "ebpf-harness"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]
    return subprocess.Popen([*argv, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            start_new_session=True)


def qemus(root: int) -> list[int]:
    out = []
    for pid in _descendants(root):
        try:
            if b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


def no_qemu_left(before: set[int]) -> bool:
    """No QEMU process that was not there before the test (zombies count as gone)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in before:
            continue
        try:
            if b"qemu-system" in (entry / "cmdline").read_bytes() and \
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                return False
        except OSError:
            continue
    return True


def all_qemus() -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"qemu-system" in (entry / "cmdline").read_bytes():
                out.add(int(entry.name))
        except OSError:
            continue
    return out


def wait_for(cond: Callable[[], bool], what: str, limit: float = 240.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def events_with(proc: subprocess.Popen[str], needle: str, count: int = 1,
                what: str = '"event":"start"') -> Callable[[], bool]:
    """True once the guest's events of this run (the file whose events mention needle)
    hold `count` lines with `what`."""
    runs = load_config().cache_dir / "runs"
    since = time.time() - 1  # this run's files only, not an earlier run's

    def check() -> bool:
        assert proc.poll() is None, proc.communicate()
        for f in runs.glob("*/*/events.jsonl"):
            try:
                if f.stat().st_mtime < since:
                    continue
                text = f.read_text()
            except OSError:
                continue
            if needle in text and text.count(what) >= count:
                return True
        return False
    return check


def test_a_frozen_guest_is_stopped_within_the_stall_limit(tmp_path: Path):
    """SIGSTOP of QEMU (a hung guest): its cell is a timeout within the stall limit, not
    after the VM's whole budget (once: still waiting after 586 s)."""
    before = all_qemus()
    out = tmp_path / "r.json"
    p = harness("run", "-k", KERNEL, "--json", str(out), "--", "sleep", "301",
                env={"EBPF_HARNESS_STALL_TIMEOUT": "20"})
    wait_for(events_with(p, "sleep 301"), "the guest command")
    [qemu] = qemus(p.pid)
    os.kill(qemu, signal.SIGSTOP)
    t0 = time.monotonic()
    _stdout, stderr = p.communicate(timeout=120)
    took = time.monotonic() - t0
    print(f"hang caught {took:.1f}s after QEMU was frozen (stall limit 20s)")
    assert p.returncode == 1, stderr
    assert took < 45, f"stall caught after {took:.0f}s"
    [r] = json.loads(out.read_text())["results"]
    assert r["status"] == "timeout" and "stopped making progress while this check ran" in r["detail"]
    assert no_qemu_left(before)


def test_sigterm_kills_every_vm_and_writes_partial_results(tmp_path: Path):
    before = all_qemus()
    out = tmp_path / "r.json"
    p = harness("run", "-k", KERNEL, "--json", str(out), "--", "sleep", "302")
    wait_for(events_with(p, "sleep 302"), "the guest command")
    p.send_signal(signal.SIGTERM)
    _stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr
    d = json.loads(out.read_text())
    assert d["interrupted"] is True
    [r] = d["results"]
    assert r["status"] == "error" and r["detail"] == "run interrupted while this check ran"
    time.sleep(1)
    assert no_qemu_left(before)


def _many_programs(path: Path, n: int) -> Path:
    # each with a bounded loop the verifier walks (thousands of instructions), so that the
    # guest is still among them when QEMU is killed, however fast the machine
    progs = "\n".join(
        f'SEC("tracepoint/syscalls/sys_enter_getpid") int p{i}(void *ctx) {{ int s = {i}; '
        f'for (int j = 0; j < 1000; j++) s += bpf_get_prandom_u32() & 1; return s & 1; }}'
        for i in range(n))
    path.write_text("#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
                    f"{progs}\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n")
    return path


def test_qemu_killed_inside_an_object_loses_no_program(tmp_path: Path):
    """Once: 'OK: 5 of 5 cells as expected' after QEMU died among 200 programs."""
    before = all_qemus()
    src = _many_programs(tmp_path / "many.bpf.c", 120)
    out = tmp_path / "r.json"
    p = harness("check", "-k", KERNEL, "--json", str(out), str(src))

    wait_for(events_with(p, str(src), 5, '"event":"result"'), "five verdicts")
    for q in qemus(p.pid):
        os.kill(q, signal.SIGKILL)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 1, stderr
    rows = json.loads(out.read_text())["results"]
    [obj] = [r for r in rows if r["row"] == "object"]  # the object's own row: no verdict
    assert obj["status"] == "error" and obj["detail"].startswith("no verdict: program p")
    results = [r for r in rows if r["row"] == "program"]
    assert len(results) == 120
    passed = [r for r in results if r["status"] == "pass"]
    assert 5 <= len(passed) < 120
    lost = [r for r in results if r["status"] != "pass"]
    assert all((r["status"] == "error" and "without a verdict" in r["detail"]) or
               "before this check ran" in r["detail"] for r in lost), lost[:3]
    assert "NOT OK" in stdout
    assert no_qemu_left(before)


def test_links_the_guest_plants_are_never_followed(tmp_path: Path):
    """A command inside the guest writes to a host file outside its directory (refused:
    read-only) and replaces its results file with a link to a host file full of forged
    verdicts; the host reads nothing through it."""
    before = all_qemus()
    forged = tmp_path / "forged.jsonl"
    forged.write_text(json.dumps({"event": "result", "subject": "forged", "status": "pass",
                                  "stage": "run"}) + "\n")
    out = tmp_path / "r.json"
    # inside the guest: find the shared directory from the agent's job path (an ancestor's
    # command line), then swap the results file for a link to the forged one
    plant = (
        "import os\n"
        "try:\n"  # and a write outside its directory: the host root is read-only
        f"    open({str(forged)!r}, 'a').write('tampered')\n"
        "except OSError as e:\n"
        "    print('write refused:', e)\n"
        "pid = os.getppid()\n"
        "while pid > 1:\n"
        "    args = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n"
        "    job = [a for a in args if a.endswith(b'.job.json')]\n"
        "    if job:\n"
        "        d = job[0][: -len(b'.job.json')].decode()\n"
        "        os.unlink(d + '/events.jsonl')\n"
        f"        os.symlink({str(forged)!r}, d + '/events.jsonl')\n"
        "        break\n"
        "    pid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
    )
    p = harness("run", "-k", KERNEL, "--json", str(out), "--", "/usr/bin/python3", "-c", plant)
    _stdout, _stderr = p.communicate(timeout=300)
    results = json.loads(out.read_text())["results"]
    assert "tampered" not in forged.read_text()
    assert all(r["subject"] != "forged" for r in results), results
    [r] = results
    assert r["status"] == "error" and p.returncode == 1
    assert no_qemu_left(before)
