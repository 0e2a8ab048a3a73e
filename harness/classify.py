"""Why a cell is not a plain pass: one code from a fixed taxonomy, read from what was
observed (status, stage, errno, the guest's hint, libbpf's and the verifier's words). Pure.

Reports group and count cells by these codes, so that "12 cells rejected" becomes "7 missing
kfuncs, 3 missing hooks, 2 verifier rejections". The codes separate what the kernel refused
(missing helper, kfunc, map, program or attach type, a verifier rejection or complexity
limit) from what depends on the loader (a map it sizes at run time, a hook a tool picks
per kernel, a program with no automatic attach point) and from the harness itself.
"""

from __future__ import annotations

import errno
import re

from .guest.protocol import HINT_NO_ATTACH_POINT, HINT_SWITCHED_OFF
from .results import VerifierInfo

# code -> what it means, in report order
CAUSES: dict[str, str] = {
    "missing-helper": "a BPF helper this kernel does not have (or a helper that takes a callback)",
    "missing-kfunc": "a kfunc this kernel does not export",
    "missing-map-type": "a map type this kernel does not have",
    "unsupported-program-type": "a program type this kernel does not have",
    "unsupported-attach-type": "an attach type or link this kernel (or its config) does not support",
    "hook-missing": "the function, tracepoint or symbol to attach to does not exist in this kernel",
    "core-relocation": "a CO-RE relocation found no matching field or type in this kernel's BTF",
    "complexity-limit": "the verifier's limits: program too large or too complex, stack too deep",
    "verifier-rejection": "the verifier refused the program (see its log)",
    "map-create-failed": "a map could not be created (often a size the loader sets at run time)",
    "load-failure": "loading failed for another reason",
    "permission": "not permitted (lockdown, a security policy)",
    "attach-failure": "attaching failed for another reason",
    "behaviour-failure": "loaded and attached, but the behaviour check or the command failed",
    "attach-not-applicable": "verified; no automatic attach point (a loader gives it a target)",
    "switched-off": "not loaded: the set-up file switches this program off",
    "needs-setup": "no verdict without loader set-up (a placeholder attach target): give a set-up file",
    "compile-error": "the source does not compile",
    "kernel-crash": "the kernel crashed",
    "timeout": "no verdict in time",
    "harness-error": "a harness or set-up problem, not the program's",
}

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (code, re.compile(rx, re.I)) for code, rx in (
        ("missing-helper", r"invalid func unknown#\d+|unknown func \w+#\d+|"
                           # a callback subprogram (bpf_loop, bpf_for_each_map_elem, timers)
                           # that an older verifier cannot place
                           r"number of funcs in func_info doesn't match number of subprogs"),
        ("missing-kfunc", r"extern \(func ksym\) '[^']+': not found|"
                          r"calling kernel function \w+ is not allowed|kernel function \w+ .*unsupported"),
        # ESRCH from preparing a BTF-attached program (fentry, fexit, lsm, tp_btf): libbpf
        # found no such function in the kernel's BTF
        ("hook-missing", r"failed to find kernel BTF type ID of|"
                         r"failed to prepare load attributes: -3\b|"
                         r"failed to create (?:k|u)(?:ret)?probe .*No such file|"
                         r"tracepoint .*No such file"),
        ("core-relocation", r"CO-RE relocat|relo #\d+.*(?:failed|unexpected)|failed to resolve CO-RE"),
        ("complexity-limit", r"BPF program is too large|too complex|combined stack size|"
                             r"stack depth \d+ exceeds|jump sequence of \d+ is too complex"),
        ("missing-map-type", r"map '[^']+': failed to create.*(?:unknown|unsupported) map type"),
        ("map-create-failed", r"map '[^']+': failed to create|failed to create map"),
        ("unsupported-program-type", r"unknown program type|program type \S+ not supported|"
                                     r"prog type \d+ not supported"),
    )
)
_PERMISSION = re.compile(r"Operation not permitted|Permission denied|lockdown", re.I)
_NO_SUCH = re.compile(r"No such file or directory", re.I)
# "Unknown error 524": libc's words for the kernel's own ENOTSUPP (an arm64 kernel before
# 6.4 has no trampoline for a kernel function)
_ATTACH_UNSUPPORTED = re.compile(r"Operation not supported|Invalid argument|not supported|"
                                 r"Unknown error 524", re.I)


_ERRNO_AT_ATTACH = {
    errno.ENOENT: "hook-missing", errno.ESRCH: "hook-missing",
    errno.EOPNOTSUPP: "unsupported-attach-type", errno.EINVAL: "unsupported-attach-type",
    524: "unsupported-attach-type",  # ENOTSUPP, the kernel's own (no trampoline on arm64 < 6.4)
}


def classify(status: str, stage: str, detail: str, verifier: VerifierInfo | None = None,
             err: int | None = None, hint: str = "") -> str:
    """The cause code of a cell, '' for a plain pass or a check that was not run.

    Reads what was observed: the status and stage, the guest's hint, the errno the failing
    call returned, and the text libbpf and the verifier wrote (never the harness's own)."""
    if status == "pass":
        return "attach-not-applicable" if hint == HINT_NO_ATTACH_POINT else ""
    if status == "skip":
        return "switched-off" if hint == HINT_SWITCHED_OFF else ""
    if status in _DIRECT:
        return _DIRECT[status]
    if stage == "compile":
        return "compile-error"
    text = detail
    if verifier is not None:
        text += "\n" + verifier.summary + "\n" + verifier.log[-8000:]
    for code, rx in _RULES:
        if rx.search(text):
            return code
    if stage == "attach" and err in _ERRNO_AT_ATTACH:
        return _ERRNO_AT_ATTACH[err]
    if stage in ("load", "attach") and (err in (errno.EPERM, errno.EACCES)
                                        or _PERMISSION.search(detail)):
        return "permission"
    if stage == "attach":
        if _NO_SUCH.search(detail):
            return "hook-missing"
        return "unsupported-attach-type" if _ATTACH_UNSUPPORTED.search(text) else "attach-failure"
    if stage in ("behavior", "run"):
        return "behaviour-failure"
    if status == "reject":
        has_log = verifier is not None and bool(verifier.log.strip())
        return "verifier-rejection" if has_log else "load-failure"
    return "load-failure"


_DIRECT = {"setup": "needs-setup", "crash": "kernel-crash", "timeout": "timeout",
           "error": "harness-error"}
