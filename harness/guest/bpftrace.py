"""bpftrace scripts in the guest: run, staged verdicts, behaviour. Stdlib only.

A script is run with the bpftrace the task names (by default the one on PATH), verbose
(-v: the verifier's words when a probe's program is refused). Its verdict comes in stages,
as the other subjects' do:

- compile: the script does not parse or is wrong in itself (no kernel involved; still
  per kernel, since a script can parse on one bpftrace and not another);
- load: the verifier refused a probe's program;
- attach: a probe could not attach, or names what this kernel lacks (a function, a
  tracepoint, one of its fields, BTF for kfunc/fentry probes);
- pass: every probe attached. The run is then ended cleanly (SIGINT after a settle time, or
  once the expected output appeared) and the script's output kept. With a declared
  trigger and expected output, pass means the script saw the event (else: fail, stage
  behaviour).

`bpftrace --info` is read once per binary; the features it lists decide the declared
`requires` (a feature this kernel lacks: the failure is expected) and go back to the host.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any

from . import protocol
from .runners import Send

_INFO: dict[str, dict[str, dict[str, str]]] = {}
# 'file.bt:12:3-9: ERROR: ...' or 'stdin:1:1-5: ERROR:': the script's own position
_POSITIONED = re.compile(r"^\S+:\d+:\d+(?:-\d+)?: ERROR: ?(.*)$")
_ATTACHING = re.compile(r"^Attaching (\d+) probes?\b")
# appended to a copy of the script: bpftrace prints what probes print only once its output
# loop runs, after every probe is attached (its own "Attaching X" lines come before each
# attach, which takes seconds under TCG), so this line is the sign that all are
MARKER = "__ebpf_harness_attached__"
_MARKER_PROBE = f'\nBEGIN\n{{\n\tprintf("{MARKER}\\n");\n}}\n'


_BEGIN = re.compile(r"(?m)^([ \t]*BEGIN\s*\{)")


def marked_copy(script: str, directory: str) -> tuple[str, bool]:
    """A copy of the script, in directory, that also prints MARKER once attached: from its
    own BEGIN block when it has one (bpftrace allows one), else from one added at its end
    (line numbers in messages stay the script's). The second value is False when no
    marker could be placed (a BEGIN this cannot open): the script as it is."""
    with open(script, errors="replace") as fh:
        text = fh.read()
    stripped = re.sub(r"/\*.*?\*/|//[^\n]*", lambda m: re.sub(r"[^\n]", " ", m.group(0)),
                      text, flags=re.DOTALL)  # a BEGIN in a comment is not one
    found = _BEGIN.search(stripped)
    if found is not None:
        at = found.end()
        text = text[:at] + f' printf("{MARKER}\\n");' + text[at:]
    elif re.search(r"(?m)^\s*BEGIN\b", stripped):
        return script, False  # a BEGIN in a probe list or with a filter: left alone
    else:
        text += _MARKER_PROBE
    dest = os.path.join(directory, os.path.basename(script))
    with open(dest, "w") as fh:
        fh.write(text)
    return dest, True
# what a kernel lacks, or a probe that did not attach (bpftrace 0.17's words)
_ATTACH_WORDS = ("error attaching probe", "not available", "could not attach probe", "tracepoint not found",
                 "tracepoints not found", "could not resolve symbol", "no probes to attach",
                 "not traceable", "no btf found", "btf is not available",
                 "does not contain a field", "not available for your kernel",
                 "kernel does not support", "is not available", "failed to attach",
                 "failed to find usdt probe", "no such file or directory", "unknown probe",
                 "failed to create iter probe", "no matching kprobe", "kfunc not available")
_LOAD_WORDS = ("error loading program", "failed to load program", "verification",
               "verifier", "permission denied (try -v)", "invalid argument (try -v)")


def info(binary: str) -> dict[str, dict[str, str]]:
    """`bpftrace --info`, by section: {'Probe types': {'kfunc': 'yes', ...}, ...}."""
    if binary not in _INFO:
        try:
            out = subprocess.run([binary, "--info"], stdout=subprocess.PIPE,  # 0.17: stderr
                                 stderr=subprocess.STDOUT, text=True, timeout=120).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        _INFO[binary] = parse_info(out)
    return _INFO[binary]


def parse_info(text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    section = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith((" ", "\t")):
            section = line.strip()
            out.setdefault(section, {})
        elif ":" in line and section:
            k, _, v = line.strip().partition(":")
            out[section][k.strip()] = v.strip()
    return out


def missing_features(features: dict[str, dict[str, str]], required: list[str]) -> list[str]:
    """The required features `bpftrace --info` says this kernel lacks (a name no section
    lists counts as lacking)."""
    have = {k.lower(): v.lower() for sec in features.values() for k, v in sec.items()}
    return [r for r in required if have.get(r.lower(), "no") not in ("yes",)
            and not have.get(r.lower(), "").isdigit()]


def classify_output(text: str, code: int | None, attached: bool) -> tuple[str, str, str, str]:
    """(status, stage, detail, verifier log) of a bpftrace run that failed (code: its exit
    status, None when still running; attached: it printed 'Attaching N probes'). Pure."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    errors = [ln for ln in lines if "ERROR" in ln or ln.lower().startswith(("error", "failed"))]
    # clang's own errors, while bpftrace compiles the script's #includes: against this
    # kernel's headers when the file is under /lib/modules or /usr/src
    clang = [ln for ln in lines if re.search(r":\d+:\d+: (?:fatal )?error: ", ln)]
    if not errors and clang:
        where = " in this kernel's headers" if clang[0].startswith(("/lib/modules/",
                                                                   "/usr/src/")) else ""
        return "fail", "compile", f"the script's C declarations do not compile{where}: " \
            f"{' '.join(clang[0].split())[:360]}", ""
    first = errors[0] if errors else next((ln for ln in reversed(lines) if ln.strip()), "")
    low = "\n".join(errors).lower() if errors else first.lower()
    why = _POSITIONED.match(first)
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
    detail = " ".join(first.split())[:400] if errors else \
        f"bpftrace ended ({how}) with no error of its own; its last words: {first[:300]}"
    probe = re.search(r"'((?:k|u|kret|uret)probe:[^']+|tracepoint:[^']+|kfunc:[^']+|"
                      r"kretfunc:[^']+|fentry:[^']+|fexit:[^']+|rawtracepoint:[^']+|"
                      r"iter:[^']+|usdt:[^']+)'", "\n".join(errors))
    if probe and probe.group(1) not in detail:
        detail += f" (probe {probe.group(1)})"
    if any(w in low for w in _LOAD_WORDS):
        log = "\n".join(lines[lines.index(first):]) if first in lines else text
        return "reject", "load", detail, log[-20000:]
    if any(w in low for w in _ATTACH_WORDS):
        return "fail", "attach", detail, ""
    if why is not None or not attached:
        return "fail", "compile", detail, ""
    return "fail", "run", detail, ""


class _Reader(threading.Thread):
    def __init__(self, proc: subprocess.Popen, copy: str, script: str) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.names = (copy, script)  # the copy's path is the script's in what is kept
        self.lines: list[str] = []
        self.attached = threading.Event()  # it said how many probes it attaches
        self.all_attached = threading.Event()  # the marker came: every one is attached
        self.changed = threading.Condition()
        self.started = time.monotonic()
        self.timing: dict[str, float] = {}  # seconds from start: 'compiled', 'attached'

    def run(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n").replace(*self.names)
            with self.changed:
                if line == MARKER:
                    self.timing.setdefault("attached", time.monotonic() - self.started)
                    self.all_attached.set()
                else:
                    self.lines.append(line)
                if _ATTACHING.match(line):  # parsed, checked, code generated: loading next
                    self.timing.setdefault("compiled", time.monotonic() - self.started)
                    self.attached.set()
                self.changed.notify_all()

    def text(self) -> str:
        with self.changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: re.Pattern[str], until: float) -> bool:
        with self.changed:
            while time.monotonic() < until:
                if pattern.search("\n".join(self.lines)):
                    return True
                if self.proc.poll() is not None and not self.is_alive():
                    return bool(pattern.search("\n".join(self.lines)))
                self.changed.wait(timeout=0.2)
        return False


def _stop(proc: subprocess.Popen, sig: int = signal.SIGINT, grace: float = 45.0) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def run_bpftrace(task: dict, send: Send, job: dict) -> None:
    subject, script = task["subject"], task["script"]
    binary = task.get("bpftrace") or "bpftrace"
    send({"event": "start", "subject": subject})
    t0 = time.monotonic()
    features = info(binary)
    extra: dict[str, Any] = {"bpftrace_info": features}
    lacking = missing_features(features, list(task.get("requires", [])))
    if lacking:
        extra["unmet"] = (f"needs bpftrace feature(s) {', '.join(lacking)} "
                          "(bpftrace --info: not on this kernel)")
    limit = float(task.get("command_timeout", job.get("check_timeout", 300)))
    settle = float(task.get("settle", 1.0))

    def result(status: protocol.GuestStatus, stage: protocol.Stage, detail: str,
               output: str, **kw: Any) -> None:
        send(protocol.result(subject, status, stage, detail, output=output[-20000:],
                             duration=time.monotonic() - t0, **extra, **kw))

    work = tempfile.mkdtemp(prefix="bt-")
    try:
        copy, marked = marked_copy(script, work)
        proc = subprocess.Popen([binary, "-v", "-B", "none", copy], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=task.get("cwd") or "/tmp")
    except OSError as e:
        result("error", "run", f"cannot run {binary} on {script}: {e.strerror or e}; install "
               "bpftrace in the guest (the host's, by default) or give --bpftrace PATH", "")
        return
    reader = _Reader(proc, copy, script)
    reader.start()
    deadline = t0 + limit
    # compile, load and attach: until 'Attaching N probes' and a settle time after it
    while time.monotonic() < deadline and not reader.attached.is_set() and proc.poll() is None:
        reader.attached.wait(timeout=0.2)
    if not reader.attached.is_set() and proc.poll() is None:
        _stop(proc, signal.SIGKILL)
        reader.join(timeout=5)
        result("timeout", "compile", f"no probe attached within {limit:.0f}s", reader.text())
        return
    # every probe attached (the marker), then the settle time; unmarked, a longer settle
    until = min(deadline, time.monotonic() + (120 if marked else 5))
    while proc.poll() is None and not reader.all_attached.is_set() and time.monotonic() < until:
        reader.all_attached.wait(timeout=0.2)
    if proc.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=settle)
    if proc.poll() is not None and proc.returncode != 0:
        reader.join(timeout=5)
        text = reader.text()
        status, stage, detail, log = classify_output(text, proc.returncode,
                                                     reader.attached.is_set())
        result(status, stage, detail, text,  # type: ignore[arg-type]
               **({"verifier": {"log": log}} if log else {}))
        return
    expect = task.get("expect") or ""
    trigger = list(task.get("trigger") or [])
    seen = True
    trig_note = ""
    if trigger:
        try:
            t = subprocess.run(trigger, capture_output=True, timeout=min(60.0, limit),
                               cwd=task.get("cwd") or "/tmp")
            trig_note = f"; trigger {' '.join(trigger)} exited {t.returncode}"
        except (OSError, subprocess.TimeoutExpired) as e:
            trig_note = f"; trigger {' '.join(trigger)} failed: {e}"
    if expect:
        pattern = re.compile(expect, re.MULTILINE)
        seen = reader.wait_for(pattern, time.monotonic() + float(task.get("expect_wait", 15)))
    code = _stop(proc)
    if code == -signal.SIGKILL:
        trig_note += "; bpftrace did not end within 45 s of SIGINT and was killed"
    reader.join(timeout=10)
    text = reader.text()
    if expect and not seen:
        seen = bool(re.search(expect, text, re.MULTILINE))  # printed at END (a histogram)
    n = reader.attached.is_set() and _ATTACHING.search(text)
    probes = f"{n.group(1)} probe(s) attached" if n else "attached"
    took = reader.timing
    if "compiled" in took and "attached" in took:  # where the time went
        probes += (f" ({took['compiled']:.1f}s to compile, "
                   f"{took['attached'] - took['compiled']:.1f}s to load and attach)")
    if code not in (0, None) and not seen:
        status, stage, detail, log = classify_output(text, code, True)
        result(status, stage, detail, text,  # type: ignore[arg-type]
               **({"verifier": {"log": log}} if log else {}))
        return
    if expect and not seen:
        result("fail", "behavior", f"{probes}, but the output never matched /{expect}/"
               + trig_note, text)
        return
    what = f"; printed /{expect}/" if expect else f"; stopped with SIGINT after {settle:g}s"
    result("pass", "behavior" if expect else "attach", probes + what + trig_note, text)
