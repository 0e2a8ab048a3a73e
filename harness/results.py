"""The one versioned results model. Every report (terminal, JSON, pytest) reads only this.

Statuses:
  pass     accepted and, where checked, attached and behaving
  reject   the kernel refused the program or a map at load (verifier, unknown type/helper)
  fail     loaded, but attach, behaviour or the command failed
  skip     declared unsupported on this kernel (below its minimum version)
  error    harness or set-up problem, never the program's fault
  crash    the kernel panicked or oopsed before this subject finished
  timeout  no verdict within the time limit
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError

SCHEMA_VERSION = 1
STATUSES = ("pass", "reject", "fail", "skip", "error", "crash", "timeout")
STAGES = ("compile", "load", "attach", "behavior", "run")


@dataclass
class VerifierInfo:
    insns_processed: int | None = None
    states: int | None = None
    peak_states: int | None = None
    verified_insns: int | None = None
    insns: int | None = None
    summary: str = ""
    log: str = ""


@dataclass
class KernelInfo:
    id: str
    release: str
    version: str
    origin: str = ""
    accel: str = ""
    boot_seconds: float | None = None
    vm_seconds: float | None = None
    pinned: bool = False  # booted the exact build a lock file names
    features: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    subject: str
    kernel: str
    status: str
    stage: str
    detail: str = ""
    expected: str = "pass"  # what the declaration expects here: pass | skip
    verifier: VerifierInfo | None = None
    duration: float | None = None
    output: str = ""
    console: str = ""

    @property
    def meets_expectation(self) -> bool:
        """pass where pass is expected; skip (or an expected rejection) where skip is."""
        if self.expected == "skip":
            return self.status == "skip"
        return self.status == "pass"


@dataclass
class Report:
    kernels: list[KernelInfo] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    loaders: dict[str, str] = field(default_factory=dict)
    harness_version: str = __version__
    schema_version: int = SCHEMA_VERSION
    command: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.meets_expectation for r in self.results)

    def subjects(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.results:
            seen.setdefault(r.subject, None)
        return list(seen)

    def cell(self, subject: str, kernel: str) -> Result | None:
        for r in self.results:
            if r.subject == subject and r.kernel == kernel:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        order = ["schema_version", "harness_version", "command", "interrupted", "loaders",
                 "kernels", "results"]
        return {k: d[k] for k in order}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        v = d.get("schema_version")
        if v != SCHEMA_VERSION:
            raise ConfigError(
                f"results file has schema_version {v}; this harness reads {SCHEMA_VERSION}. "
                "Re-run the checks with this version, or use the harness that wrote it."
            )
        results = []
        for r in d.get("results", []):
            r = dict(r)
            ver = r.pop("verifier", None)
            results.append(Result(**r, verifier=VerifierInfo(**ver) if ver else None))
        return cls(
            kernels=[KernelInfo(**k) for k in d.get("kernels", [])],
            results=results,
            loaders=dict(d.get("loaders", {})),
            harness_version=d.get("harness_version", ""),
            schema_version=v,
            command=list(d.get("command", [])),
            interrupted=bool(d.get("interrupted", False)),
        )

    @classmethod
    def read(cls, path: Path) -> Report:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read results file {path}: {e}") from e

    def merge(self, other: Report) -> None:
        """Add another report's kernels and results (later results win per cell)."""
        known = {k.id for k in self.kernels}
        self.kernels += [k for k in other.kernels if k.id not in known]
        keys = {(r.subject, r.kernel) for r in other.results}
        self.results = [r for r in self.results if (r.subject, r.kernel) not in keys]
        self.results += other.results
        self.loaders.update(other.loaders)
