"""The host <-> guest protocol: the job file the host writes and the JSON lines the guest
agent writes back, as typed definitions. Stdlib only: the guest side imports it, and the
host side imports it from here (never the other way round).

A job (``python3 -m harness.guest JOB.json``) lists tasks; the agent answers with events,
one JSON object per line, flushed as they happen:

    boot     the agent is up: release, loaders, features, boot time and its phases
    preload  modules imported once before the checks fork
    plan     an object's programs, announced before the first is checked
    start    a check began (the agent adds the guest's uptime)
    result   a check's verdict as the guest observed it
    heartbeat, done

A result carries what happened, never a judgement: ``status`` and ``stage`` say how far
the check got, ``errno`` what the kernel returned, and ``hint`` what the guest knows that
text would otherwise have to carry (a program switched off by its set-up file, a program
verified with no automatic attach point). Whether that was expected is the host's
decision (harness/decision.py).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

PROTOCOL = 2  # 2: results carry 'hint' (1 wrote these facts into 'detail' only)

# set by the agent for every check: the one directory the guest may write, where a command
# (the pytest plugin's guest side) leaves files for the host
RESULTS_DIR_ENV = "EBPF_HARNESS_RESULTS_DIR"
PYTEST_REPORTS = "pytest-reports.jsonl"  # the plugin's guest side writes its reports here

GuestStatus = Literal["pass", "reject", "fail", "skip", "error", "timeout"]
Stage = Literal["compile", "load", "attach", "behavior", "run"]

# result hints: facts the guest observed that decide a cell's meaning
HINT_SWITCHED_OFF = "switched-off"  # the set-up file turned autoload off: not loaded
HINT_NO_ATTACH_POINT = "attach-not-applicable"  # verified; the loader names the target
HINTS = (HINT_SWITCHED_OFF, HINT_NO_ATTACH_POINT)


class Task(TypedDict):
    """One check. ``kind`` selects the runner; the other keys are the runner's."""

    kind: Literal["object", "program", "command", "bcc", "bpftrace"]
    subject: str
    timeout: NotRequired[float]
    # object: path, setup; program: object, check, attach; command: argv, alive, cwd,
    # env, command_timeout; bcc: script, args, cwd; bpftrace: script, bpftrace, requires,
    # trigger, expect, settle, cwd, command_timeout
    path: NotRequired[str]
    setup: NotRequired[dict[str, Any]]
    object: NotRequired[str]
    check: NotRequired[str | None]
    attach: NotRequired[str]
    argv: NotRequired[list[str]]
    alive: NotRequired[float | None]
    cwd: NotRequired[str]
    env: NotRequired[dict[str, str]]
    command_timeout: NotRequired[float]
    script: NotRequired[str]
    args: NotRequired[list[str]]
    reads: NotRequired[list[str]]  # other host files a command reads (named in its argv)
    bpftrace: NotRequired[str]  # the bpftrace binary to run a script with
    requires: NotRequired[list[str]]  # bpftrace --info features the script needs
    trigger: NotRequired[list[str]]  # argv run once every probe is attached
    expect: NotRequired[str]  # a regex the script's output must match
    settle: NotRequired[float]  # seconds to wait after attaching


class Job(TypedDict):
    protocol: int
    kernel_id: str
    results: str  # the events file, in the one directory the guest may write
    check_timeout: float
    setup: bool  # mount bpffs, debugfs, ... (False for the local backend)
    tasks: list[Task]
    hide: list[str]
    heartbeat: NotRequired[float]
    preload: NotRequired[bool]
    helper_prog_types: NotRequired[list[str]]


class ResultEvent(TypedDict):
    event: Literal["result"]
    subject: str
    status: GuestStatus
    stage: Stage
    detail: str
    section: NotRequired[str]  # an object program's ELF section
    duration: NotRequired[float]
    errno: NotRequired[int]  # what the failing call returned (positive)
    hint: NotRequired[str]  # one of HINTS
    verifier: NotRequired[dict[str, Any]]
    output: NotRequired[str]
    traceback: NotRequired[str]
    unmet: NotRequired[str]  # a declared requirement this kernel lacks (bpftrace --info)
    bpftrace_info: NotRequired[dict[str, dict[str, str]]]  # `bpftrace --info`, by section


class PlanEvent(TypedDict):
    event: Literal["plan"]
    subject: str
    programs: list[str]  # 'LABEL:NAME' subjects, in order
    sections: dict[str, str]  # program name -> section


class StartEvent(TypedDict):
    event: Literal["start"]
    subject: str
    uptime: NotRequired[float]


class BootEvent(TypedDict):
    event: Literal["boot"]
    release: str
    machine: str
    loaders: dict[str, str]
    features: dict[str, Any]
    boot_seconds: float | None
    notes: NotRequired[list[str]]
    phases: NotRequired[dict[str, float]]


def result(subject: str, status: GuestStatus, stage: Stage, detail: str,
           **extra: Any) -> ResultEvent:
    """A result event; ``extra`` holds the NotRequired keys."""
    ev: dict[str, Any] = {"event": "result", "subject": subject, "status": status,
                          "stage": stage, "detail": detail, **extra}
    return ev  # type: ignore[return-value]
