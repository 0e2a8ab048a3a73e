"""The verdict core (harness/decision.py): one pure function, typed inputs, a frozen verdict."""

from __future__ import annotations

import dataclasses
import errno

import pytest

from harness.decision import (
    PASS,
    Context,
    Expectation,
    Observation,
    Prediction,
    Splat,
    VMEnd,
    decide,
    unfinished,
)
from harness.guest.protocol import HINT_NO_ATTACH_POINT, HINT_SWITCHED_OFF
from harness.results import as_expected
from harness.versions import KernelVersion

V510 = KernelVersion.parse("5.10.223")
LOOP = Prediction(minimum="5.17", below=True, needs="bpf_loop helper (5.17)")


def test_the_verdict_is_frozen_and_made_once():
    v = decide(Observation("s", "pass", "attach", "ok"), Context(V510))
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.status = "fail"  # type: ignore[misc]
    assert v.expectation == PASS and v.result(Observation("s", "pass", "attach"), "5.10").as_expected


@pytest.mark.parametrize("words", ["verified; attach not applicable: no point",
                                   "anything else the guest might say one day"])
def test_rewording_a_message_changes_no_verdict(words: str):
    """Status and cause come from what was observed (the hint, the errno), not the words."""
    v = decide(Observation("o:p", "pass", "load", words, hint=HINT_NO_ATTACH_POINT), Context(V510))
    assert (v.status, v.cause) == ("pass", "attach-not-applicable")
    off = decide(Observation("o:q", "skip", "load", words, hint=HINT_SWITCHED_OFF), Context(V510))
    assert (off.status, off.cause, off.expectation.expected) == ("skip", "switched-off", "skip")
    gone = decide(Observation("o:r", "fail", "attach", words, section="kprobe/vfs_read",
                              errno=errno.ENOENT), Context(V510))
    assert gone.cause == "hook-missing" and "kprobe" not in gone.status


def test_a_declared_minimum_expects_a_refusal_and_the_status_stays_what_happened():
    ctx = Context(V510, declared_unmet="needs bpf_loop (>= 5.17); this kernel is 5.10.223",
                  declaration="o/x/program.toml")
    v = decide(Observation("o/x", "reject", "load", "invalid func unknown#181"), ctx)
    assert (v.status, v.expectation) == ("reject", Expectation(
        "refusal", "declaration", "needs bpf_loop (>= 5.17); this kernel is 5.10.223"))
    assert v.cause == "missing-helper" and v.detail == "invalid func unknown#181"
    assert as_expected(v.status, v.stage, "refusal", "declaration")
    passed = decide(Observation("o/x", "pass", "behavior", "ok"), ctx)
    # a pass below a declared minimum: the declaration is wrong, and the cell says so
    assert passed.status == "pass" and "fix o/x/program.toml" in passed.detail
    assert not as_expected("pass", "behavior", "refusal", "declaration")
    # a source that does not compile is never an expected refusal
    broken = decide(Observation("o/x", "fail", "compile", "error: boom"), ctx)
    assert not as_expected(broken.status, broken.stage, "refusal", "declaration")


def test_a_prediction_is_the_expectation_of_a_users_object_and_a_pass_is_a_backport():
    ctx = Context(V510, prediction=LOOP, predicted_expectation=True)
    v = decide(Observation("o.bpf.o:p", "reject", "load", "invalid func unknown#181"), ctx)
    assert (v.status, v.expectation.expected, v.expectation.by) == ("reject", "refusal", "prediction")
    assert v.expectation.reason.startswith("needs bpf_loop helper (5.17)") and not v.unexplained
    back = decide(Observation("o.bpf.o:p", "pass", "attach", "ok"), ctx)
    assert "a backport of bpf_loop helper (5.17)" in back.detail
    assert as_expected("pass", "attach", "refusal", "prediction")
    # at or above the minimum a refusal is the case worth a look
    above = decide(Observation("o.bpf.o:p", "reject", "load", "R1 invalid mem access"),
                   dataclasses.replace(ctx, prediction=dataclasses.replace(LOOP, below=False)))
    assert above.unexplained and above.expectation == PASS
    # a refusal the declaration expects (a kernel built without an option) is explained
    declared = decide(Observation("o/x", "fail", "attach", "Operation not supported"),
                      Context(V510, declared_unmet="kernel built without CONFIG_FPROBE",
                              prediction=dataclasses.replace(LOOP, below=False)))
    assert not declared.unexplained and declared.expectation.by == "declaration"


def test_a_bundled_program_below_its_prediction_is_explained_not_excused():
    ctx = Context(V510, prediction=LOOP)  # declared programs: the declaration decides
    v = decide(Observation("o/x", "reject", "load", "invalid func"), ctx)
    assert v.expectation == PASS and v.detail.startswith(
        "needs bpf_loop helper (5.17) (>= 5.17); this kernel is 5.10.223: invalid func")


def test_a_placeholder_hook_needs_set_up_and_a_real_one_is_named():
    obs = Observation("o:p", "fail", "attach", "No such file or directory", section="kprobe/dummy_x")
    v = decide(obs, Context(V510))
    assert (v.status, v.cause) == ("setup", "needs-setup") and "[programs.p] target" in v.detail
    given = decide(obs, Context(V510, target_given=True))
    assert given.status == "fail" and given.detail.startswith("hook missing: function 'dummy_x'")


def test_console_warnings_land_in_the_cell_that_was_running():
    v = decide(Observation("s", "pass", "attach", "ok"),
               Context(V510, splats=(Splat("WARNING: at kernel/bpf/x.c", "trace..."),)))
    assert v.status == "pass" and v.detail.endswith("the kernel logged: WARNING: at kernel/bpf/x.c")
    assert v.console == "trace..."


def test_cells_the_guest_never_reported_say_why_from_how_the_vm_ended():
    base = dict(crash=None, crash_headline="", interrupted=False, stalled=False,
                timed_out=False, seconds=9.0, booted=True, finished=False, console_tail="")
    crash = unfinished("s", True, VMEnd(**{**base, "crash": "Oops", "crash_headline": "Oops: 1"}))
    assert (crash.status, crash.detail) == ("crash", "kernel crashed while this check ran: Oops: 1")
    assert unfinished("s", False, VMEnd(**{**base, "timed_out": True})).status == "timeout"
    assert "did not finish" in unfinished("s", False, VMEnd(**base)).detail
    v = decide(crash, Context(V510, declared_unmet="needs x"))
    # no verdict is never as expected, whatever was declared
    assert v.cause == "kernel-crash" and not as_expected(v.status, v.stage, "refusal", "declaration")


def test_a_kprobe_named_after_its_own_program_is_set_up_only_when_no_kernel_has_it():
    """gethostlatency's kprobe/handle_entry: no kernel function anywhere, its loader attaches
    it to libc by hand; slabratetop's kprobe/kmem_cache_alloc: a kernel function gone on
    7.2, a real failure there."""
    obs = Observation("o:handle_entry", "fail", "attach", "attach kprobe/handle_entry: ENOENT",
                      section="kprobe/handle_entry", errno=errno.ENOENT)
    manual = decide(obs, Context(V510, manual_attach=True))
    assert (manual.status, manual.cause) == ("setup", "needs-setup")
    assert "[programs.handle_entry] target" in manual.detail
    gone = decide(obs, Context(V510))
    assert (gone.status, gone.cause) == ("fail", "hook-missing")
    given = decide(obs, Context(V510, manual_attach=True, target_given=True))
    assert given.status == "fail"


def test_a_bare_kprobe_section_is_judged_on_its_program_s_name():
    obs = Observation("o:blk_account_io_start", "fail", "attach", "attach: ENOENT",
                      section="kprobe", errno=errno.ENOENT)
    v = decide(obs, Context(V510))
    assert v.status == "fail" and "function 'blk_account_io_start' is not in this kernel" in v.detail


def test_a_perf_event_program_not_attached_says_so_instead_of_passing():
    """llcstat: verified, but its hardware cache events were never opened; the real tool
    fails in a VM without them. Not a pass: what was not tested, and how to test it."""
    obs = Observation("o:on_cache_miss", "pass", "load", "verified; attach not applicable",
                      section="perf_event", hint=HINT_NO_ATTACH_POINT)
    v = decide(obs, Context(V510))
    assert (v.status, v.cause) == ("setup", "needs-setup")
    assert 'target = "cpu-clock"' in v.detail and "not tested" in v.detail
    tc = decide(dataclasses.replace(obs, section="tc"), Context(V510))
    assert tc.status == "pass"  # a tc program: its loader's device, attach not applicable
