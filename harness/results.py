"""The one versioned results model. Every report (terminal, Markdown, HTML, JUnit, diff,
badge, the pytest plugin's) reads only this.

A status says what happened in the kernel:
  pass     accepted and, where checked, attached and behaving
  reject   the kernel refused the program or a map at load (verifier, unknown type/helper)
  fail     loaded, but attach, behaviour or the command failed
  skip     not run at all (a test whose kernel range or pytest.skip excludes it, a program
           its set-up file switches off)
  error    harness or set-up problem, never the program's fault
  crash    the kernel panicked or oopsed before this subject finished
  timeout  no verdict within the time limit
  setup    no verdict: the object needs loader set-up it was not given (a placeholder
           attach target, a size only its loader knows); a set-up file gives it

Whether that was expected is beside it, never instead of it: ``expected`` (pass,
refusal: reject or fail, skip), ``expected_by`` (declaration, prediction, test, setup, or
'' for the default) and ``expected_reason``; ``as_expected`` derives the two (one rule,
here). A refusal predicted from a user's object also accepts a pass (a backport).

Rows: a subject of its own (a bundled program, a command, a test) has row ''. An object
checked with `check` has an object row (row 'object', its subject the object's label) and
a row per program (row 'program', subject 'LABEL:NAME', parent LABEL). One of the two
kinds carries the verdict; the other is shown for information (``info``, always met): by
default the object rows carry it (harness/bpfobj/verdict.py), with --per-program the
program rows.

Schema history (the JSON Schema ships as harness/schema/results.schema.json):
  1  first version
  2  verifier statistics as veristat has them (states per instruction, verification time,
     stack depth, translated and JITed size); kernels say whether they were pinned by a
     lock file; each result has a cause code (harness/classify.py). Version 1 files are
     read (statistics unknown, so null; causes worked out on reading).
  3  object and program rows (row, parent, section; expected 'info'; per_program), and
     the status 'setup'. Version 1 and 2 files are read (every row a subject of its own).
  4  the status says what happened, the expectation is beside it: a refusal below a
     minimum kernel is 'reject' or 'fail' with expected 'refusal' (3 wrote 'skip' and put
     the status in the detail); expected_by, expected_reason, info (3's expected 'info'),
     as_expected (derived, written for readers of the JSON); kernels say their column's
     architecture and flavour (arch, rt). Older files are upgraded on reading (_upgrade),
     the one place that reads a version 3 detail.
  5  each cell may carry the verdict predicted before booting (prediction: verdict,
     reason, agrees), read from that kernel's own BTF (harness/predict). Version 4 files
     are read as they are (no prediction).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, ResultsError
from .fsio import write_atomic
from .versions import KernelVersion

SCHEMA_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)
STATUSES = ("pass", "reject", "fail", "skip", "error", "crash", "timeout", "setup")
EXPECTED = ("pass", "refusal", "skip")
EXPECTED_BY = ("", "declaration", "prediction", "test", "setup")


def as_expected(status: str, stage: str, expected: str, by: str) -> bool:
    """The one rule: does what happened meet what was expected?"""
    if expected == "skip":
        return status == "skip"
    if expected == "refusal":
        if status in ("reject", "fail"):
            return stage != "compile"  # a source that does not compile is never expected
        # a prediction read from a user's object is a lower bound: a pass is a backport
        return status == "pass" and by == "prediction"
    return status == "pass"
STAGES = ("compile", "load", "attach", "behavior", "run")


@dataclass
class VerifierInfo:
    """What the verifier said about a subject. For a subject of several programs the counts
    and sizes are sums over its programs; peak states, states per instruction and stack
    depth are the largest of them."""

    insns_processed: int | None = None  # "processed N insns": the verifier's own work
    states: int | None = None  # total_states
    peak_states: int | None = None
    max_states_per_insn: int | None = None
    verification_usec: int | None = None  # "verification time N usec"
    stack_depth: int | None = None  # bytes: frames added up ("16+32"), or 7.x's "stack depth max"
    verified_insns: int | None = None  # bpf_prog_info.verified_insns (5.16+)
    insns: int | None = None  # program size in instructions, as loaded
    xlated_bytes: int | None = None  # translated program size (bpf_prog_info)
    jited_bytes: int | None = None  # JITed image size (bpf_prog_info)
    summary: str = ""
    log: str = ""


# the statistics a report charts and `report diff` compares, with their labels
STATS: tuple[tuple[str, str], ...] = (
    ("insns_processed", "insns processed"),
    ("states", "states"),
    ("peak_states", "peak states"),
    ("max_states_per_insn", "max states/insn"),
    ("verification_usec", "verification µs"),
    ("stack_depth", "stack bytes"),
    ("insns", "program insns"),
    ("xlated_bytes", "xlated bytes"),
    ("jited_bytes", "JITed bytes"),
)


@dataclass
class KernelInfo:
    id: str
    release: str
    version: str
    origin: str = ""
    accel: str = ""
    cpus: int | None = None  # the guest's vCPUs
    boot_seconds: float | None = None  # guest uptime when the agent started
    ready_seconds: float | None = None  # guest uptime when the first check started
    vm_seconds: float | None = None
    pinned: bool = False  # booted the exact build a lock file names
    features: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    arch: str = "amd64"  # Debian architecture of the column
    rt: bool = False  # a PREEMPT_RT build

    @property
    def variant(self) -> str:
        """What sets this column apart from its line's generic host build: '', 'arm64',
        'rt', 'arm64-rt' (the host's architecture, amd64, left out)."""
        arch = "" if self.arch == "amd64" else self.arch
        return "-".join(x for x in (arch, "rt" if self.rt else "") if x)

    @property
    def kversion(self) -> KernelVersion:
        try:
            return KernelVersion.parse(self.version or self.release)
        except ConfigError:
            return KernelVersion(0, 0, 0)

    @property
    def line(self) -> str:
        """major.minor: what a baseline and a later run of the same kernel line share."""
        return self.kversion.line


@dataclass
class Result:
    subject: str
    kernel: str
    status: str
    stage: str
    detail: str = ""
    expected: str = "pass"  # pass | refusal | skip (EXPECTED)
    verifier: VerifierInfo | None = None
    duration: float | None = None
    output: str = ""
    console: str = ""
    cause: str = ""  # harness.classify's code: why it is not a plain pass ('' when it is)
    row: str = ""  # '' a subject of its own | 'object' | 'program' (see the module's doc)
    parent: str = ""  # a program row's object
    section: str = ""  # a program row's ELF section (its program type and hook)
    predicted: str = ""  # the minimum kernel read from the object (bpfobj.requirements)
    unexplained: bool = False  # refused at or above its predicted minimum kernel
    expected_by: str = ""  # EXPECTED_BY: who expects it ('' the default: it should pass)
    expected_reason: str = ""  # why ('needs bpf_loop helper (5.17) ...')
    info: bool = False  # shown for information; the object's (or program's) row decides
    # predicted before booting (harness/predict): verdict, reason, agrees (None: cannot tell)
    prediction: dict[str, Any] | None = None

    @property
    def as_expected(self) -> bool:
        """What happened meets what was expected (rows shown for information aside)."""
        return as_expected(self.status, self.stage, self.expected, self.expected_by)

    @property
    def meets_expectation(self) -> bool:
        """As expected, or a row shown for information (always met)."""
        return self.info or self.as_expected

    def outcome(self) -> tuple[str, str]:
        """What two runs must agree on for the same cell."""
        return self.status, self.expected


@dataclass
class Report:
    kernels: list[KernelInfo] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    loaders: dict[str, str] = field(default_factory=dict)
    harness_version: str = __version__
    schema_version: int = SCHEMA_VERSION
    command: list[str] = field(default_factory=list)
    interrupted: bool = False
    per_program: bool = False  # program rows carry the verdict, not object rows
    notes: list[str] = field(default_factory=list)  # about the run (declarations checked)
    # how the run used the machine: VMs at once, vCPUs each, accelerator, cores, why
    run: dict[str, Any] = field(default_factory=dict)

    def view(self, per_program: bool) -> Report:
        """The same results with the verdict on program rows (True) or object rows."""
        out = Report(**{**self.__dict__, "results": [], "per_program": per_program})
        for r in self.results:
            r = Result(**{**r.__dict__})
            if r.row == "object":
                r.info = per_program
            elif r.row == "program":
                r.info = not per_program
            out.results.append(r)
        return out

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.meets_expectation for r in self.results)

    def subjects(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.results:
            seen.setdefault(r.subject, None)
        return list(seen)

    def kernel_order(self) -> list[KernelInfo]:
        """Kernels oldest first, compared as versions."""
        return sorted(self.kernels, key=lambda k: (k.kversion, k.release))

    def kernel(self, kid: str) -> KernelInfo | None:
        return next((k for k in self.kernels if k.id == kid), None)

    def cell(self, subject: str, kernel: str) -> Result | None:
        return next((r for r in self.results if r.subject == subject and r.kernel == kernel),
                    None)

    def counts(self) -> tuple[int, int]:
        """(cells meeting their expectation, all cells), rows shown for information aside."""
        counted = [r for r in self.results if not r.info]
        return sum(r.meets_expectation for r in counted), len(counted)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "kernels": [asdict(k) for k in self.kernels],
            "results": [{**asdict(r), "as_expected": r.as_expected} for r in self.results],
        }
        meta = {"schema_version": self.schema_version, "harness_version": self.harness_version,
                "command": list(self.command), "interrupted": self.interrupted,
                "per_program": self.per_program, "notes": list(self.notes),
                "loaders": dict(self.loaders), "run": dict(self.run)}
        return {**meta, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def write(self, path: Path) -> None:
        write_text_atomic(path, self.to_json())

    @classmethod
    def from_dict(cls, d: Any, source: str = "results") -> Report:
        """Validated against the shipped JSON Schema first; a version 1 file is upgraded."""
        if not isinstance(d, dict) or "schema_version" not in d or "results" not in d:
            raise ResultsError(f"{source}: not an ebpf-harness results file (no schema_version "
                               "and results); give the file written by --json")
        v = d.get("schema_version")
        if v not in READABLE_VERSIONS:
            raise ResultsError(
                f"{source}: results schema_version {v!r}; this harness ({__version__}) reads "
                f"{', '.join(map(str, READABLE_VERSIONS))}. Upgrade ebpf-harness to read it, or "
                "re-run the checks with this version."
            )
        validate(d, source)
        results = []
        for r in d["results"]:
            r = dict(r)
            r.pop("as_expected", None)  # derived: worked out again
            ver = r.pop("verifier", None)
            res = Result(**r, verifier=VerifierInfo(**ver) if ver else None)
            results.append(_upgrade(res, v, "cause" in r))
        return cls(
            kernels=[KernelInfo(**k) for k in d.get("kernels", [])],
            results=results,
            loaders=dict(d.get("loaders", {})),
            harness_version=d.get("harness_version", ""),
            schema_version=SCHEMA_VERSION,
            command=list(d.get("command", [])),
            interrupted=bool(d.get("interrupted", False)),
            per_program=bool(d.get("per_program", False)),
            notes=list(d.get("notes", [])),
            run=dict(d.get("run", {})),
        )

    @classmethod
    def read(cls, path: Path) -> Report:
        try:
            text = path.read_text()
        except OSError as e:
            raise ResultsError(f"cannot read results file {path}: {e.strerror or e}") from e
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ResultsError(f"{path}: not JSON ({e}); give the file written by --json") from e
        return cls.from_dict(data, str(path))


_V3_UNDERNEATH = re.compile(r"; (reject|fail): ")


def _upgrade(r: Result, version: int, has_cause: bool) -> Result:
    """A result of an older schema in version 4's terms. Version 3 and older wrote an
    expected refusal as status 'skip' with the real status in the detail
    ('needs X (>= 5.17); reject: ...'), and rows shown for information as expected 'info':
    this is the one place such a detail is read."""
    if version < 4:
        if r.expected == "info":
            r.info, r.expected = True, "pass"
        by = "declaration" if r.row == "" else "prediction"
        m = _V3_UNDERNEATH.search(r.detail) if r.status == "skip" else None
        if m:
            r.expected_reason = r.detail[: m.start()]
            r.status, r.expected, r.expected_by = m.group(1), "refusal", by
        elif r.status == "skip" and r.detail.startswith("switched off"):
            r.expected, r.expected_by, r.cause = "skip", "setup", "switched-off"
        elif r.status == "skip" and r.row == "object":
            r.expected, r.expected_by = "refusal", "prediction"
            r.status = "reject"  # 3 kept no status for a whole object below its minimum
        elif r.status == "skip":
            r.expected, r.expected_by = "skip", "test"
        elif r.expected == "skip":  # a pass or no verdict where the declaration said skip
            r.expected, r.expected_by = "refusal", by
    if not has_cause and not r.cause:  # a version 1 file
        from .classify import classify

        r.cause = classify(r.status, r.stage, r.detail, r.verifier)
    return r


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of the current results version, shipped inside the package."""
    text = resources.files("harness").joinpath("schema", "results.schema.json").read_text()
    return json.loads(text)


def validate(d: dict[str, Any], source: str = "results") -> None:
    """Raise ResultsError naming the first place where `d` breaks the schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(d), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ResultsError(f"{source}: not a valid ebpf-harness results file: at {where}: "
                           f"{e.message}{more}")


def merge(named: list[tuple[str, Report]]) -> Report:
    """Join reports (one per CI job, say) into one matrix.

    The same cell in two inputs must have the same outcome, and the same kernel id the same
    release; otherwise ResultsError names both inputs, the subject and the kernel.
    """
    out = Report(command=[], harness_version=__version__)
    cell_from: dict[tuple[str, str], tuple[str, Result]] = {}
    kernel_from: dict[str, tuple[str, KernelInfo]] = {}
    for name, rep in named:
        for k in rep.kernels:
            if k.id in kernel_from:
                first, known_k = kernel_from[k.id]
                if known_k.release != k.release:
                    raise ResultsError(
                        f"kernel {k.id} is {known_k.release} in {first} but {k.release} in {name}; "
                        "merge runs of the same builds (pin them with a lock file)")
                continue
            kernel_from[k.id] = (name, k)
            out.kernels.append(k)
        for r in rep.results:
            key = (r.subject, r.kernel)
            if key in cell_from:
                first, known = cell_from[key]
                if known.outcome() != r.outcome():
                    raise ResultsError(
                        f"{r.subject} @ {r.kernel}: {known.status} in {first} but {r.status} in "
                        f"{name}; merge results of separate kernels or subjects, or re-run one")
                continue
            cell_from[key] = (name, r)
            out.results.append(r)
        out.loaders.update(rep.loaders)
        out.notes += [n for n in rep.notes if n not in out.notes]
        out.interrupted = out.interrupted or rep.interrupted
    out.command = ["ebpf-harness", "report", "merge", *(name for name, _ in named)]
    return out


def read_all(paths: list[Path]) -> Report:
    """One report from one or more results files (merged when several)."""
    if not paths:
        raise ConfigError("give at least one results file (written by --json)")
    reports = [(str(p), Report.read(p)) for p in paths]
    return reports[0][1] if len(reports) == 1 else merge(reports)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all."""
    write_atomic(path, text.encode())

