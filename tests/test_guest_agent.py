"""The guest agent, run on the host without a VM (setup disabled), and its import rule."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GUEST = REPO / "harness" / "guest"


def test_guest_imports_nothing_from_the_host_side():
    for f in GUEST.glob("*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    assert not (node.module or "").startswith("harness"), f"{f.name}: {node.module}"
                else:
                    assert node.level == 1, f"{f.name} reaches outside harness.guest"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    assert not a.name.startswith("harness"), f"{f.name}: import {a.name}"


def run_agent(tmp_path: Path, tasks: list[dict], timeout: float = 5) -> list[dict]:
    results = tmp_path / "events.jsonl"
    job = {"results": str(results), "check_timeout": timeout, "setup": False, "tasks": tasks}
    (tmp_path / "job.json").write_text(json.dumps(job))
    subprocess.run([sys.executable, "-m", "harness.guest", str(tmp_path / "job.json")],
                   cwd=REPO, check=True, timeout=120)
    return [json.loads(x) for x in results.read_text().splitlines()]


def test_agent_commands_pass_fail_alive_and_timeout(tmp_path):
    tasks = [
        {"kind": "command", "subject": "ok", "argv": ["true"]},
        {"kind": "command", "subject": "bad", "argv": ["sh", "-c", "echo nope; exit 3"]},
        {"kind": "command", "subject": "tracer", "argv": ["sleep", "30"], "alive": 0.5},
        {"kind": "command", "subject": "quits", "argv": ["true"], "alive": 5},
        {"kind": "command", "subject": "dies", "argv": ["false"], "alive": 5},
        {"kind": "command", "subject": "hang", "argv": ["sleep", "60"], "timeout": 1.5,
         "command_timeout": 100},
        {"kind": "nonsense", "subject": "odd"},
    ]
    ev = run_agent(tmp_path, tasks)
    assert ev[0]["event"] == "boot" and ev[0]["release"]
    assert ev[-1]["event"] == "done"
    res = {e["subject"]: e for e in ev if e["event"] == "result"}
    assert res["ok"]["status"] == "pass"
    assert res["bad"]["status"] == "fail" and "exit 3" in res["bad"]["detail"]
    assert "nope" in res["bad"]["detail"]
    assert res["tracer"]["status"] == "pass" and "SIGINT" in res["tracer"]["detail"]
    assert res["quits"]["status"] == "pass"  # exit 0 passes, --alive or not
    assert res["dies"]["status"] == "fail" and "before 5s" in res["dies"]["detail"]
    assert res["hang"]["status"] == "timeout"
    assert res["odd"]["status"] == "error"
    # exactly one verdict per subject, in order
    assert [e["subject"] for e in ev if e["event"] == "result"] == [t["subject"] for t in tasks]


def test_agent_object_that_is_not_bpf(tmp_path):
    bogus = tmp_path / "bogus.bpf.o"
    bogus.write_bytes(b"not an elf")
    ev = run_agent(tmp_path, [{"kind": "object", "subject": "bogus", "path": str(bogus)}])
    (r,) = [e for e in ev if e["event"] == "result"]
    assert r["status"] == "fail" and r["stage"] == "load" and "cannot open" in r["detail"]


@pytest.mark.parametrize(("section", "manual"), [
    ("kprobe", True), ("kprobe/do_sys_openat2", False), ("uprobe", True), ("usdt", True),
    ("perf_event", True), ("?perf_event", True), ("tc", True), ("tcx/ingress", True),
    ("socket", True), ("fentry", True), ("fentry/tcp_connect", False), ("tp_btf/sched_switch", False),
    ("tracepoint/syscalls/sys_enter_openat", False), ("raw_tp", True), ("lsm/file_open", False),
    ("xdp", False), ("cgroup_skb/egress", False), ("sk_lookup", False), ("struct_ops/x", True),
    ("uretprobe/readline", True), ("uprobe//bin/bash:readline", False),  # bashreadline's
])
def test_sections_without_an_automatic_attach_point(section: str, manual: bool):
    from harness.guest.runners import manual_attach

    assert manual_attach(section) is manual


def test_sizes_a_loader_would_give():
    from harness.guest.libbpf import default_sizes

    assert default_sizes(7, 0, 0) == [("value_size", 1016), ("max_entries", 10240)]  # stack trace
    assert default_sizes(7, 8, 100) == []
    assert default_sizes(27, 0, 0) == [("max_entries", 256 << 10)]  # ring buffer
    assert default_sizes(1, 4, 0) == [("max_entries", 10240)]  # hash
    assert default_sizes(4, 4, 0) == []  # perf event array: libbpf sizes it to the CPUs


def test_checks_and_scripts_are_run_with_their_imports_preloaded_once(tmp_path):
    """The agent imports what checks and BCC scripts import before it forks them (once per
    VM, not once per check), leaves out what it cannot import, and the script still runs
    as `python3 SCRIPT ARGS` would: argv, __main__, exit status, output, atexit."""
    script = tmp_path / "tool.py"
    script.write_text(
        "import sys, atexit, json\n"
        "try:\n    import no_such_module_anywhere\nexcept ImportError:\n    pass\n"
        "atexit.register(lambda: print('cleaned up'))\n"
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
        "print('preloaded:', 'json' in sys.modules, sys.argv[1:], __name__)\n"
        "if __name__ == '__main__':\n    sys.exit(int(sys.argv[1]))\n")
    crash = tmp_path / "crash.py"
    crash.write_text("def f():\n    raise ValueError('boom')\nf()\n")
    ctrl_c = tmp_path / "ctrl_c.py"
    ctrl_c.write_text("import atexit\natexit.register(lambda: print('atexit after ^C'))\n"
                      "raise KeyboardInterrupt\n")
    tasks = [
        {"kind": "bcc", "subject": "ctrl_c", "script": str(ctrl_c)},
        {"kind": "bcc", "subject": "ok", "script": str(script), "args": ["0"]},
        {"kind": "bcc", "subject": "three", "script": str(script), "args": ["3"]},
        {"kind": "bcc", "subject": "crash", "script": str(crash)},
    ]
    ev = run_agent(tmp_path, tasks)
    (pre,) = [e for e in ev if e["event"] == "preload"]
    assert "json" in pre["modules"] and "atexit" in pre["modules"]
    assert "no_such_module_anywhere" not in pre["modules"]
    res = {e["subject"]: e for e in ev if e["event"] == "result"}
    assert res["ok"]["status"] == "pass"
    assert "preloaded: True ['0'] __main__" in res["ok"]["output"]
    assert "cleaned up" in res["ok"]["output"]
    # its thread finished before the exit, then the atexit handlers ran: as python3 does
    assert res["ok"]["output"].index("thread done") < res["ok"]["output"].index("cleaned up")
    assert res["three"]["status"] == "fail" and res["three"]["exit_code"] == 3
    assert res["crash"]["status"] == "fail" and res["crash"]["exit_code"] == 1
    # python3's own traceback: the script's frames, not the agent's
    assert "ValueError: boom" in res["crash"]["output"]
    assert "crash.py\", line 2, in f" in res["crash"]["output"]
    assert "runners.py" not in res["crash"]["output"]
    # an uncaught Ctrl-C: the traceback, the atexit handlers, then death by SIGINT
    assert res["ctrl_c"]["status"] == "fail" and res["ctrl_c"]["exit_code"] == -2
    assert "KeyboardInterrupt" in res["ctrl_c"]["output"]
    assert "atexit after ^C" in res["ctrl_c"]["output"]


def test_a_script_stopped_with_sigint_after_alive_passes(tmp_path):
    script = tmp_path / "tracer.py"
    script.write_text("import time\ntry:\n    while True:\n        time.sleep(0.05)\n"
                      "except KeyboardInterrupt:\n    print('detached')\n")
    ev = run_agent(tmp_path, [{"kind": "bcc", "subject": "t", "script": str(script),
                               "alive": 0.5}])
    (r,) = [e for e in ev if e["event"] == "result"]
    assert r["status"] == "pass" and "SIGINT" in r["detail"] and "detached" in r["output"]


def test_imports_of_reads_absolute_imports_only(tmp_path):
    from harness.guest.agent import imports_of, preload

    f = tmp_path / "check.py"
    f.write_text("from __future__ import annotations\nimport os, json as j\n"
                 "from pyroute2 import IPRoute\nfrom . import sibling\n"
                 "def f():\n    import struct\n")
    assert imports_of(str(f)) == ["os", "json", "pyroute2", "struct"]
    assert imports_of(str(tmp_path / "missing.py")) == []
    loaded, seconds = preload(["json", "no_such_module_anywhere", "struct"])
    assert loaded == ["json", "struct"] and seconds >= 0


def test_bcc_version_is_read_without_importing_bcc():
    code = ("import sys; from harness.guest import runners; v = runners.bcc_version(); "
            "print(v, 'bcc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[1] == "False"
    assert out[0][0].isdigit() or out[0].startswith("unavailable")
