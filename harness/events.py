"""Typed events from a kernel's run to whatever shows it (the terminal, the pytest plugin).

The orchestrator emits them as the VM boots and as the guest reports (the host follows the
guest's JSON lines while the VM runs); interfaces only see these, never strings to parse.
`from_guest` is the one translation of a guest line into an event. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RunPlanned:
    """How the run uses the machine, before the first VM boots (vm.plan)."""

    kernel: str  # "" : the whole run
    kernels: int
    jobs: int
    cpus: int
    accel: str
    why: str


@dataclass(frozen=True)
class BootStarted:
    kernel: str
    release: str
    accel: str
    checks: int  # subjects in this VM (an object's programs are announced later)


@dataclass(frozen=True)
class AgentUp:
    kernel: str
    boot_seconds: float | None


@dataclass(frozen=True)
class ChecksPlanned:
    """An object's programs, announced by the guest before it checks them."""

    kernel: str
    subject: str
    programs: int


@dataclass(frozen=True)
class CheckStarted:
    kernel: str
    subject: str


@dataclass(frozen=True)
class CheckFinished:
    kernel: str
    subject: str
    status: str
    detail: str
    duration: float | None


@dataclass(frozen=True)
class Note:
    kernel: str
    text: str


@dataclass(frozen=True)
class VMEnded:
    kernel: str
    seconds: float
    as_expected: int
    cells: int


Event = RunPlanned | BootStarted | AgentUp | ChecksPlanned | CheckStarted | CheckFinished | Note | VMEnded
Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """A listener for callers that show nothing."""


def from_guest(kernel: str, ev: dict) -> Event | None:
    """The event a guest JSON line stands for, or None (heartbeats, unknown kinds)."""
    kind = ev.get("event")
    if kind == "boot":
        return AgentUp(kernel, ev.get("boot_seconds"))
    if kind == "plan":
        return ChecksPlanned(kernel, str(ev.get("subject", "")), len(ev.get("programs", [])))
    if kind == "start":
        return CheckStarted(kernel, str(ev.get("subject", "")))
    if kind == "result":
        return CheckFinished(kernel, str(ev.get("subject", "")), str(ev.get("status", "error")),
                             str(ev.get("detail", "")), ev.get("duration"))
    return None


# --- preparing kernels (kernels/, session.prepare_kernels), before any VM ------------------


@dataclass(frozen=True)
class KernelResolving:
    """A kernel's preparation begins: resolved in the signed archive index, or, with
    locked_release, exactly the build a lock file pins."""

    kernel: str
    locked_release: str = ""
    origin: str = ""


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes of one download so far (an index or a package), as they arrive."""

    label: str  # "trixie InRelease", "trixie Packages", a package name
    done: int
    total: int  # 0: not known
    kernel: str = ""  # the kernel whose preparation asked for it; "" for none (kernels lock)


@dataclass(frozen=True)
class KernelReady:
    """A kernel tree is verified, extracted and bootable."""

    kernel: str
    release: str
    origin: str
    locked: bool


@dataclass(frozen=True)
class KernelFetchFailed:
    """A kernel could not be prepared; the error itself is raised to the caller."""

    kernel: str
    error: str  # its first line


FetchEvent = KernelResolving | DownloadProgress | KernelReady | KernelFetchFailed
FetchListener = Callable[[FetchEvent], None]
