"""A cell's verdict, decided once. Pure.

Every cell of every run goes through ``decide``: what happened (an ``Observation``, from
the guest's result event or from how the VM ended), in what context (the kernel, the
program's declaration or the prediction read from its object, the set-up file, the
kernel's console warnings) -> one frozen ``Verdict``. The Result the reports read is made
from it and not changed afterwards; nothing downstream reads a status or a cause out of
text. An object's row is decided from its programs' verdicts (bpfobj/verdict.py).

The status says what happened in the kernel (pass, reject, fail, error, crash, timeout,
setup; skip only for a check that was not run). Whether that was expected is beside it:
``Expectation`` (pass, refusal, skip), who said so (the declaration, the prediction, the
test, the set-up file) and why. Whether the cell is as expected is derived from the two
(``results.as_expected``), never stored in their place.
"""

from __future__ import annotations

from dataclasses import dataclass

from .bpfobj import verdict as objverdict
from .classify import classify
from .guest.protocol import HINT_NO_ATTACH_POINT, HINT_SWITCHED_OFF
from .results import Result, VerifierInfo
from .verifier import info_from
from .versions import KernelVersion


def below_minimum(needs: str, minimum: str, kernel: str) -> str:
    """The one wording of "this kernel is older than what it needs", wherever it is said
    (a declaration, a prediction, a test's marker, the bpf fixture)."""
    return f"needs {needs} (>= {minimum}); this kernel is {kernel}"


@dataclass(frozen=True)
class Observation:
    """What happened to one cell, as observed; no judgement in it."""

    subject: str
    status: str  # pass reject fail skip error crash timeout
    stage: str
    detail: str = ""
    section: str = ""
    errno: int | None = None
    hint: str = ""  # guest.protocol.HINTS
    verifier: VerifierInfo | None = None
    duration: float | None = None
    output: str = ""
    console: str = ""
    unmet: str = ""  # a declared requirement the guest found missing (bpftrace --info)

    @classmethod
    def from_event(cls, ev: dict) -> Observation:
        """From a guest result event (guest.protocol.ResultEvent)."""
        err = ev.get("errno")
        return cls(subject=str(ev["subject"]), status=str(ev.get("status", "error")),
                   stage=str(ev.get("stage", "run")), detail=str(ev.get("detail", "")),
                   section=str(ev.get("section", "")),
                   errno=err if isinstance(err, int) else None, hint=str(ev.get("hint", "")),
                   verifier=info_from(ev.get("verifier")), duration=ev.get("duration"),
                   output=str(ev.get("output", "")), unmet=str(ev.get("unmet", "")))


@dataclass(frozen=True)
class Expectation:
    expected: str = "pass"  # pass | refusal | skip
    by: str = ""  # declaration | prediction | test | setup | '' (the default: it should pass)
    reason: str = ""


PASS = Expectation()


@dataclass(frozen=True)
class Prediction:
    """The minimum kernel read from the object (bpfobj.requirements), against one kernel."""

    minimum: str  # '5.17'
    below: bool  # this kernel's line is older than the minimum
    needs: str  # what the program needs that this kernel is older than, newest first


@dataclass(frozen=True)
class Splat:
    """A kernel warning printed on the console while this check ran."""

    headline: str
    excerpt: str


@dataclass(frozen=True)
class Context:
    kernel: KernelVersion
    declared_unmet: str | None = None  # why the declaration rules this kernel out
    declaration: str = ""  # where to fix the declaration ('security/x/program.toml')
    prediction: Prediction | None = None
    # a user's object declares nothing: the prediction is its expectation
    predicted_expectation: bool = False
    target_given: bool = False  # the set-up file names this program's attach target
    splats: tuple[Splat, ...] = ()
    expectation: Expectation | None = None  # given outright (a pytest skip, a set-up file)
    # a kprobe named after its own program is no function in any kernel of the run: its
    # loader attaches it by hand (harness/predict knows every kernel's functions)
    manual_attach: bool = False


@dataclass(frozen=True)
class Verdict:
    status: str
    stage: str
    detail: str
    cause: str
    expectation: Expectation
    predicted: str = ""
    unexplained: bool = False
    console: str = ""

    def result(self, obs: Observation, kernel_id: str, row: str = "", parent: str = "") -> Result:
        e = self.expectation
        return Result(subject=obs.subject, kernel=kernel_id, status=self.status,
                      stage=self.stage, detail=self.detail, expected=e.expected,
                      expected_by=e.by, expected_reason=e.reason, verifier=obs.verifier,
                      duration=obs.duration, output=obs.output, console=self.console,
                      cause=self.cause, section=obs.section, predicted=self.predicted,
                      unexplained=self.unexplained, row=row, parent=parent)


# causes a prediction from the object's needs cannot explain (the hook is a fact of the
# kernel's symbols, set-up is the loader's, behaviour is the test's)
_NOT_PREDICTED = ("hook-missing", "needs-setup", "behaviour-failure")


def expectation(ctx: Context, obs: Observation) -> Expectation:
    """What this cell is expected to do, from the context alone (not from what happened)."""
    if ctx.expectation is not None:
        return ctx.expectation
    if obs.hint == HINT_SWITCHED_OFF:
        return Expectation("skip", "setup", "switched off by the set-up file")
    if ctx.declared_unmet:
        return Expectation("refusal", "declaration", ctx.declared_unmet)
    if obs.unmet:
        return Expectation("refusal", "declaration", obs.unmet)
    p = ctx.prediction
    if p is not None and p.below and ctx.predicted_expectation:
        return Expectation("refusal", "prediction", below_minimum(p.needs, p.minimum,
                                                                  str(ctx.kernel)))
    return PASS


def decide(obs: Observation, ctx: Context) -> Verdict:
    status, detail, console = obs.status, obs.detail, obs.console
    if obs.verifier and status == "reject" and obs.verifier.summary:
        # the verifier's own reason explains a rejection better than libbpf's wrapper
        detail = f"verifier: {obs.verifier.summary}"
    cause = classify(status, obs.stage, detail, obs.verifier, obs.errno, obs.hint)
    prog = obs.subject.rpartition(":")[2]
    what = objverdict.hook(obs.section)
    if what is None and obs.section.lstrip("?") in ("kprobe", "kretprobe"):
        what = ("function", prog)  # a bare kprobe section: tried on its program's name
    if cause == "hook-missing" and what is not None:
        kind, name = what
        if name == prog and ctx.manual_attach and not ctx.target_given:
            status, cause = "setup", "needs-setup"
            detail = (f"attach target '{name}' is the program's own name and a function in "
                      f"none of the kernels of this run: its loader attaches it by hand (a "
                      f"uprobe, a function it picks); give the target in a set-up file "
                      f"([programs.{prog}] target = \"...\"): {detail}")
        elif objverdict.is_placeholder(name) and not ctx.target_given:
            status, cause = "setup", "needs-setup"
            detail = (f"attach target '{name}' is a placeholder its loader replaces at run "
                      f"time; give the real one in a set-up file ([programs.{prog}] target = "
                      f"\"...\"): {detail}")
        else:
            detail = f"hook missing: {kind} '{name}' is not in this kernel: {detail}"
    if obs.hint == HINT_NO_ATTACH_POINT and obs.section.lstrip("?").startswith("perf_event") \
            and status == "pass" and not ctx.target_given:
        status, cause = "setup", "needs-setup"
        detail = (f"verified, not attached: a perf_event program runs on the events its "
                  f"loader opens (often hardware counters, which a VM may not have), so "
                  f"whether it works is not tested; give a software event in a set-up file "
                  f"([programs.{prog}] target = \"cpu-clock\") to attach it here ({detail})")
    exp = expectation(ctx, obs)
    p = ctx.prediction
    refused = status in ("reject", "fail")
    unexplained = False
    if status == "pass" and exp.expected == "refusal" and exp.by == "declaration":
        detail = (f"passes although the declaration rules this kernel out "
                  f"({exp.reason}): fix {ctx.declaration} ({detail})")
    elif p is not None and refused and p.below and cause not in _NOT_PREDICTED \
            and exp.by != "prediction":
        detail = f"{below_minimum(p.needs, p.minimum, str(ctx.kernel))}: {detail}"
    elif p is not None and status == "pass" and p.below and ctx.predicted_expectation:
        detail += (f"; passes on {ctx.kernel}, below its predicted minimum {p.minimum}: "
                   f"a backport of {p.needs}")
    elif p is not None and refused and not p.below and cause not in _NOT_PREDICTED \
            and exp.expected != "refusal":  # a declared option explains it, say
        unexplained = True
    for sp in ctx.splats:
        detail = f"{detail}; the kernel logged: {sp.headline}"
        console = (console + "\n" if console else "") + sp.excerpt
    return Verdict(status=status, stage=obs.stage, detail=detail, cause=cause, expectation=exp,
                   predicted=p.minimum if p is not None else "", unexplained=unexplained,
                   console=console)


@dataclass(frozen=True)
class VMEnd:
    """How a VM ended, for the cells it left without a verdict."""

    crash: str | None  # the console's crash report, if the kernel crashed
    crash_headline: str
    interrupted: bool
    stalled: bool
    timed_out: bool
    seconds: float
    booted: bool
    finished: bool  # the agent wrote its final 'done' event
    console_tail: str
    console_path: str = ""


def unfinished(subject: str, started: bool, end: VMEnd) -> Observation:
    """The observation of a cell the guest never reported, from how its VM ended."""
    where = f" (console: {end.console_path})" if end.console_path else ""
    when = "while this check ran" if started else "before this check ran"
    if end.crash:
        return Observation(subject, "crash", "run", f"kernel crashed {when}: "
                           f"{end.crash_headline}{where}", console=end.crash)
    if end.interrupted:
        return Observation(subject, "error", "run", f"run interrupted {when}")
    if end.stalled:
        return Observation(subject, "timeout", "run", f"the guest stopped making progress "
                           f"{when} (no event, heartbeat or console output for the stall "
                           f"limit); stopped after {end.seconds:.0f}s{where}")
    if end.timed_out:
        return Observation(subject, "timeout", "run", f"VM still running after "
                           f"{end.seconds:.0f}s; stopped {when}{where}")
    if not end.booted:
        tail = " | ".join(end.console_tail.strip().splitlines()[-3:])[:300]
        return Observation(subject, "error", "run", f"the guest agent never started{where}: "
                           f"{tail}", console=end.console_tail[-4000:])
    agent = "" if end.finished else " (the guest agent did not finish: the VM died)"
    return Observation(subject, "error", "run",
                       f"the VM ended {when}, without a verdict{agent}{where}")
