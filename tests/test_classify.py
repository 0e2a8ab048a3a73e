"""Cause codes from real messages (seen on the default matrix and libbpf-tools)."""

from __future__ import annotations

import errno

import pytest

from harness.classify import CAUSES, classify
from harness.guest.protocol import HINT_NO_ATTACH_POINT, HINT_SWITCHED_OFF
from harness.results import VerifierInfo


@pytest.mark.parametrize(("status", "stage", "detail", "log", "cause"), [
    ("reject", "load", "verifier: invalid func unknown#173 (38 lines omitted)", "", "missing-helper"),
    ("reject", "load", "verifier: number of funcs in func_info doesn't match number of subprogs",
     "", "missing-helper"),
    ("reject", "load", "program search_path: libbpf: extern (func ksym) 'bpf_strlen': not found in "
     "kernel or module BTFs", "", "missing-kfunc"),
    ("reject", "load", "libbpf: prog 'x': failed to find kernel BTF type ID of "
     "'__blk_account_io_start': -3", "", "hook-missing"),
    ("fail", "attach", "attach kprobe/dummy_file_read: No such file or directory (2)", "",
     "hook-missing"),
    ("reject", "load", "libbpf: prog 'account_page_dirtied': failed to prepare load attributes: "
     "-3; libbpf: prog 'account_page_dirtied': failed to load: -3", "", "hook-missing"),
    ("fail", "attach", "program count_calls: attach kprobe.multi/__x64_sys_getp?id: Operation not "
     "supported (95)", "", "unsupported-attach-type"),
    ("reject", "load", "map 'stackmap': failed to create: Invalid argument", "", "map-create-failed"),
    ("reject", "load", "verifier: BPF program is too large. Processed 1000001 insn", "",
     "complexity-limit"),
    ("reject", "load", "libbpf: prog 'x': relo #3: target field not found", "relo #3: failed",
     "core-relocation"),
    ("reject", "load", "verifier: R1 invalid mem access 'scalar'", "0: (79) r1 = *(u64 *)(r1 +0)\n",
     "verifier-rejection"),
    ("reject", "load", "Operation not permitted (1)", "", "permission"),
    ("fail", "behavior", "no exec event for pid 12", "", "behaviour-failure"),
    ("fail", "compile", "x.bpf.c:3: error: boom", "", "compile-error"),
    ("crash", "run", "kernel crashed", "", "kernel-crash"),
    ("timeout", "run", "no progress", "", "timeout"),
    ("error", "run", "the guest agent never started", "", "harness-error"),
    ("pass", "attach", "verified and attached (xdp on lo)", "", ""),
    # a check that was not run has no cause of its own
    ("skip", "run", "pytest.skip: needs something", "", ""),
])
def test_causes(status: str, stage: str, detail: str, log: str, cause: str):
    v = VerifierInfo(log=log) if log else None
    assert classify(status, stage, detail, v) == cause
    assert cause == "" or cause in CAUSES


def test_a_behaviour_check_missing_a_file_is_not_a_missing_hook():
    assert classify("fail", "behavior", "FileNotFoundError: No such file or directory (2)") \
        == "behaviour-failure"


def test_what_the_guest_observed_decides_not_the_words():
    """The guest's hint and the errno decide; a reworded message changes nothing."""
    assert classify("pass", "load", "any words at all", hint=HINT_NO_ATTACH_POINT) == \
        "attach-not-applicable"
    # the words alone no longer make a cause: the harness never parses its own text
    assert classify("pass", "load", "verified; attach not applicable: ...") == ""
    assert classify("skip", "load", "any words", hint=HINT_SWITCHED_OFF) == "switched-off"
    assert classify("fail", "attach", "attach kprobe/x: failed", err=errno.ENOENT) == "hook-missing"
    assert classify("fail", "attach", "attach lsm/x: failed", err=errno.EPERM) == "permission"
    assert classify("fail", "attach", "attach xdp: failed", err=errno.EOPNOTSUPP) == \
        "unsupported-attach-type"
    assert classify("fail", "attach", "attach x: failed", err=errno.EBUSY) == "attach-failure"
    # the kernel's own ENOTSUPP, by number or by libc's words for it
    assert classify("fail", "attach", "attach fentry/x: failed", err=524) == \
        "unsupported-attach-type"
    assert classify("fail", "attach", "attach fentry/x: Unknown error 524 (524)") == \
        "unsupported-attach-type"
