"""How a cell is named in every report: one symbol, word and legend per status. Pure."""

from __future__ import annotations

from ..results import Report, Result

# (status) -> (terminal text, Markdown/HTML symbol, what it means)
STATUS = {
    "pass": ("pass", "✅", "accepted, and attached / behaved where checked"),
    "skip": ("skip", "⏭️", "not run (a test's kernel range or pytest.skip, a program switched "
             "off by its set-up file)"),
    "reject": ("REJECT", "⛔", "refused at load (verifier, unknown helper, map or program type)"),
    "fail": ("FAIL", "❌", "loaded, but attach, behaviour or the command failed"),
    "error": ("ERROR", "⚠️", "harness or set-up problem, not the program's fault"),
    "crash": ("CRASH", "💥", "the kernel crashed"),
    "timeout": ("TIMEOUT", "⏱️", "no verdict in time"),
    "setup": ("SETUP", "🔧", "no verdict: needs loader set-up the object does not carry "
              "(a placeholder attach target); give a set-up file"),
}
INFO_ROWS = ("↳ rows are an object's programs, shown for information: the object's row "
             "carries the verdict (--per-program for the other way round)")
UNEXPECTED_PASS = ("pass?", "❗", "passes where the declaration rules the kernel out: fix it")
# a reject or fail that was expected (below a declared or predicted minimum kernel): the
# status is still shown, in lower case, with its own symbol
EXPECTED_REFUSAL = ("reject/fail", "🔽", "refused as expected: below its declared or predicted "
                    "minimum kernel (the detail names what it needs)")


# a cell not run, only predicted (check --predict-only): the predicted verdict, marked
PREDICTED = {"pass": ("~pass", "🔮✅"), "reject": ("~REJECT", "🔮⛔"), "core": ("~CORE", "🔮🧩"),
             "attach": ("~ATTACH", "🔮🪝"), "unknown": ("~?", "🔮❔")}
PREDICTED_LEGEND = ("~", "🔮", "predicted from the kernel's BTF, not run (--predict-only): "
                    "pass, REJECT (a missing helper, type or kfunc), CORE (a CO-RE relocation "
                    "this kernel cannot satisfy), ATTACH (no such hook), ? (cannot tell)")


def predicted_only(r: Result) -> bool:
    return r.status == "skip" and r.stage == "predict" and r.prediction is not None


def expected_refusal(r: Result) -> bool:
    return r.status in ("reject", "fail") and r.expected == "refusal" and r.as_expected


def term(r: Result | None) -> str:
    """The terminal cell: the status; lower case for a refusal that was expected; '!'
    marks a cell that does not meet its expectation."""
    if r is None:
        return "-"
    if predicted_only(r):
        assert r.prediction is not None
        return PREDICTED.get(r.prediction["verdict"], ("~?",))[0]
    if expected_refusal(r):
        return r.status
    text = STATUS.get(r.status, (r.status,))[0]
    return text if r.meets_expectation else text + "!"


def symbol(r: Result | None) -> str:
    if r is None:
        return "·"
    if predicted_only(r):
        assert r.prediction is not None
        return PREDICTED.get(r.prediction["verdict"], ("", "🔮❔"))[1]
    if r.status == "pass" and not r.meets_expectation:
        return UNEXPECTED_PASS[1]
    if expected_refusal(r):
        return EXPECTED_REFUSAL[1]
    return STATUS.get(r.status, ("", "?"))[1]


def expectation_text(r: Result) -> str:
    """'expected: refusal, needs bpf_loop helper (5.17) (prediction)', '' for the default."""
    if not r.expected_by and r.expected == "pass":
        return ""
    why = f", {r.expected_reason}" if r.expected_reason else ""
    by = f" ({r.expected_by})" if r.expected_by else ""
    return f"expected: {r.expected}{why}{by}"


def legend(symbols: bool) -> list[tuple[str, str]]:
    """(mark, meaning) for every status, in report order."""
    rows = [(s[1] if symbols else s[0], s[2]) for s in STATUS.values()]
    rows.append((EXPECTED_REFUSAL[1] if symbols else "reject, fail", EXPECTED_REFUSAL[2]))
    rows.append((UNEXPECTED_PASS[1] if symbols else "'!'",
                 UNEXPECTED_PASS[2] if symbols else "marks a cell that does not meet its expectation"))
    return rows


def row_label(report: Report, subject: str, arrow: str = "↳ ") -> str:
    """A program row of an object is shown under it, by its program name."""
    r = next((x for x in report.results if x.subject == subject), None)
    if r is not None and r.row == "program" and r.parent:
        return "  " + arrow + subject[len(r.parent) + 1:]
    return subject


def has_objects(report: Report) -> bool:
    return any(r.row == "object" for r in report.results)


def domain(subject: str) -> str:
    """The bundled suite's domain ('security/lsm_file_open' -> 'security'); a user's own
    object or command is 'user'."""
    head, sep, _ = subject.partition("/")
    return head if sep and head in ("observability", "security", "networking") else "user"


def not_as_expected(report: Report) -> list[Result]:
    """Cells that do not meet their expectation, unexplained ones (refused at or above
    their predicted minimum kernel) first, then in matrix order."""
    order = {k.id: i for i, k in enumerate(report.kernel_order())}
    subjects = {s: i for i, s in enumerate(report.subjects())}
    bad = [r for r in report.results if not r.meets_expectation]
    return sorted(bad, key=lambda r: (not r.unexplained, subjects.get(r.subject, 0),
                                      order.get(r.kernel, 0)))


def causes(results: list[Result]) -> list[tuple[str, int, str]]:
    """(cause, how many cells, what it means), most frequent first."""
    from ..classify import CAUSES

    counts: dict[str, int] = {}
    for r in results:
        if r.cause:
            counts[r.cause] = counts.get(r.cause, 0) + 1
    return [(c, n, CAUSES.get(c, "")) for c, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]


def verdict_line(report: Report) -> str:
    good, total = report.counts()
    verdict = "OK" if report.ok else "NOT OK"
    extra = " (interrupted: results are partial)" if report.interrupted else ""
    rows = ""
    if has_objects(report):
        rows = " (program rows)" if report.per_program else " (object rows)"
    if report.results and all(predicted_only(r) or r.stage == "predict" for r in report.results):
        return (f"PREDICTED {verdict}: no kernel booted; {total - good} of {total} cells{rows} "
                "expected to work are predicted to be refused")
    return f"{verdict}: {good} of {total} cells{rows} as expected, {total - good} not{extra}"


def worth_explaining(r: Result) -> bool:
    """A cell the reports explain: not a pass, and for a predicted-only cell, a verdict
    row predicted not to pass."""
    if predicted_only(r):
        return not r.info and r.prediction is not None and r.prediction["verdict"] != "pass"
    return r.status != "pass"


def predictions(report: Report) -> list[str]:
    """The minimum kernel read from each object next to what was observed, for subjects
    where it tells something: a prediction above the oldest kernel run, a first pass
    later than the oldest, or a pass below the prediction (a backport)."""
    from ..versions import KernelVersion

    order = report.kernel_order()
    if not order or all(r.stage == "predict" for r in report.results):
        return []  # nothing observed to hold the minimum against
    out = []
    for s in report.subjects():
        rows = [report.cell(s, k.id) for k in order]
        pred = next((r.predicted for r in rows if r is not None and r.predicted), "")
        if not pred:
            continue
        p = KernelVersion.parse(pred)
        passing = [k for k, r in zip(order, rows, strict=True) if r is not None and r.status == "pass"]
        below = [k.id for k in passing if k.kversion.below_line(p)]
        late = passing[:1] != order[:1]
        if not (below or late or p > order[0].kversion):
            continue
        text = f"{s}: predicted {pred}, " + (f"passes from {passing[0].id}" if passing
                                              else "passes on none of these kernels")
        if below:
            text += f"; passes below its prediction on {', '.join(below)} (a backport)"
        out.append(text)
    return out


def differences(report: Report) -> list[str]:
    """Cells of an arm64 or PREEMPT_RT column whose status differs from the same subject
    on the same line's generic host build, each named as an architecture or PREEMPT_RT
    difference, with its detail."""
    return list(difference_by_cell(report).values())


def difference_by_cell(report: Report) -> dict[tuple[str, str], str]:
    """differences(), by (subject, kernel id) of the cell that differs."""
    base = {k.line: k for k in report.kernel_order() if k.variant == ""}
    out: dict[tuple[str, str], str] = {}
    for k in report.kernel_order():
        b = base.get(k.line)
        if not k.variant or b is None:
            continue
        what = ("architecture" if k.arch != b.arch else "") + \
            (" and PREEMPT_RT" if k.arch != b.arch and k.rt else "PREEMPT_RT" if k.rt else "")
        for s in report.subjects():
            r, g = report.cell(s, k.id), report.cell(s, b.id)
            if r is None or g is None or r.status == g.status:
                continue
            why = " ".join(r.detail.split())[:240]
            # a difference the program declares says so, with its reason: what it needs
            expected = (f", expected: {r.expected_reason}"
                        if r.expected != "pass" and r.expected_reason else "")
            out[s, k.id] = (f"{s}: {g.status} on {b.id}, {r.status} on {k.id} ({what} "
                            f"difference{expected}){': ' + why if why else ''}")
    return out


def disagreements(report: Report) -> list[str]:
    """Cells whose observed verdict does not bear out the one predicted before booting:
    either a bug in the prediction or a kernel surprise worth a look. Listed first in
    every report."""
    out = []
    for r in report.results:
        p = r.prediction
        if p is None or p.get("agrees") is not False:
            continue
        said = p["verdict"] + (f" ({p['reason']})" if p.get("reason") else "")
        out.append(f"{r.subject} @ {r.kernel}: predicted {said}; observed {r.status} "
                   f"({' '.join(r.detail.split())[:200]})")
    return out


def prediction_summary(report: Report) -> str:
    """'predicted before booting: 130 of 135 cells agree, 2 disagree, 3 cannot tell'."""
    preds = [r.prediction for r in report.results if r.prediction is not None]
    if not preds:
        return ""
    yes = sum(p.get("agrees") is True for p in preds)
    no = sum(p.get("agrees") is False for p in preds)
    return (f"predicted before booting: {yes} of {len(preds)} cells agree, {no} disagree, "
            f"{len(preds) - yes - no} cannot tell")
