"""Verdicts before booting, without a VM: kernel capabilities read from BTF, CO-RE
resolved against it, dead code found from the constants libbpf writes, the loader
modelled. The kernels here are fake: BPF objects compiled from tests/data/predict/
fake_kernel.h only for their BTF, which holds the facts a real kernel's BTF holds. The
same probes are held against real kernels in tests/vm/test_real_kernels.py."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from harness.bpfobj.core import essential_name
from harness.bpfobj.elf import read_object
from harness.bpfobj.flow import analyse, live_instructions
from harness.build.compile import compile_bpf
from harness.predict import object_prediction
from harness.predict.capabilities import capabilities
from harness.predict.facts import read_model
from harness.predict.model import KernelFacts, Predicted, agrees, combine, predict_object
from harness.report import cells
from harness.report.markdown import render_markdown
from harness.report.terminal import render_matrix
from harness.results import KernelInfo, Report, Result
from harness.versions import KernelVersion

DATA = Path(__file__).resolve().parent / "data" / "predict"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("predict")
    (d / "vmlinux.h").write_text("/* not used: UAPI headers and local CO-RE types only */\n")
    return {n: compile_bpf(DATA / f"{n}.bpf.c", d / "out", d / "vmlinux.h")
            for n in ("probes", "unused_map", "kfunc", "kernel_old", "kernel_new")}


def _kernel(obj: Path, version: str) -> KernelFacts:
    btf = read_object(obj).btf
    assert btf is not None
    return KernelFacts(id=version, version=KernelVersion.parse(version), arch="amd64",
                       btf=btf, caps=capabilities(btf), config={})


@pytest.fixture(scope="module")
def kernels(built) -> dict[str, KernelFacts]:
    return {"old": _kernel(built["kernel_old"], "5.10"),
            "new": _kernel(built["kernel_new"], "6.12")}


# program -> (verdict on the old fake kernel, on the new one)
EXPECTED = {
    "core_field": ("pass", "core"),  # inet_sock.freebind only in the old one
    "core_guarded": ("pass", "pass"),  # the read is dead code where the field is missing
    "helper_loop": ("reject", "pass"),  # bpf_loop only in the new one
    "helper_guarded": ("pass", "pass"),  # the call is dead where the enum value is missing
    "probe_read_fallback": ("pass", "pass"),  # libbpf calls bpf_probe_read on the old one
    "socket_filter": ("pass", "pass"),  # SEC("socket") has a program type
    "fentry_missing": ("attach", "attach"),
    "kprobe_missing": ("attach", "attach"),
    "tracepoint_missing": ("attach", "attach"),
}


@pytest.mark.parametrize("program", sorted(EXPECTED))
def test_each_probe_predicted_on_each_fake_kernel(built, kernels, program: str):
    model = read_model(built["probes"])
    for which, want in zip(("old", "new"), EXPECTED[program], strict=True):
        got = predict_object(model, kernels[which])[program]
        assert got.verdict == want, f"{program} on the {which} kernel: {got.short()}"


def test_the_reasons_name_what_is_missing(built, kernels):
    model = read_model(built["probes"])
    new = predict_object(model, kernels["new"])
    old = predict_object(model, kernels["old"])
    assert new["core_field"].reason.startswith("CO-RE: field inet_sock.freebind not in this "
                                               "kernel")
    assert "bpf_loop helper" in old["helper_loop"].reason
    assert "ebpf_harness_no_such_function" in new["fentry_missing"].reason
    assert "ebpf_harness_no_such_event" in new["tracepoint_missing"].reason


def test_an_unused_map_of_a_missing_type_fails_the_whole_object(built, kernels):
    model = read_model(built["unused_map"])
    old = predict_object(model, kernels["old"])["plain"]
    assert old.verdict == "reject" and "map unused: type task_storage" in old.reason
    assert predict_object(model, kernels["new"])["plain"].verdict == "pass"


def test_a_kfunc_the_kernel_lacks_fails_the_object_it_is_declared_in(built, kernels):
    model = read_model(built["kfunc"])
    old = predict_object(model, kernels["old"])["kfunc_rcu"]
    assert old.verdict == "reject" and "kfunc bpf_rcu_read_lock not in this kernel" in old.reason
    assert predict_object(model, kernels["new"])["kfunc_rcu"].verdict == "pass"  # tagged there


def test_a_program_switched_off_by_the_setup_is_not_predicted(built, kernels):
    model = read_model(built["probes"])
    got = predict_object(model, kernels["new"], {"programs": {"core_field": {"autoload": False}}})
    assert "core_field" not in got and "core_guarded" in got


def test_a_setup_target_replaces_the_section_s_target(built, kernels):
    model = read_model(built["probes"])
    got = predict_object(model, kernels["new"],
                         {"programs": {"kprobe_missing": {"target": "inet_bind"}}})
    assert got["kprobe_missing"].verdict == "pass"


def ins(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, dst | (src << 4), off, imm)


def test_a_known_constant_rules_out_a_branch():
    code = (ins(0xB7, 1, imm=1)  # 0: r1 = 1 (a CO-RE existence answer)
            + ins(0x15, 1, off=2, imm=0)  # 1: if r1 == 0 goto 4
            + ins(0x85, imm=181)  # 2: call bpf_loop
            + ins(0x95)  # 3: exit
            + ins(0x85, imm=4)  # 4: call bpf_probe_read
            + ins(0x95))  # 5: exit
    assert live_instructions(code) == {0, 1, 2, 3}
    assert live_instructions(code, {0: 0}) == {0, 1, 4, 5}  # libbpf wrote 0 instead
    # a value that is not known keeps both ways
    unknown = ins(0x61, 1, 1) + code[8:]  # r1 = *(u32 *)(r1 + 0)
    assert live_instructions(unknown) == {0, 1, 2, 3, 4, 5}


def test_a_constant_survives_a_copy_and_dies_at_a_call():
    code = (ins(0xB7, 2, imm=0) + ins(0xBF, 1, 2)  # r2 = 0; r1 = r2
            + ins(0x55, 1, off=1, imm=0)  # if r1 != 0 goto +1
            + ins(0x95) + ins(0x95))
    assert live_instructions(code) == {0, 1, 2, 3}
    call_between = ins(0xB7, 1, imm=0) + ins(0x85, imm=5) + ins(0x55, 1, off=1) + \
        ins(0x95) + ins(0x95)
    assert live_instructions(call_between) == {0, 1, 2, 3, 4}


def test_a_kconfig_value_picks_the_path_and_the_context_reads_are_seen_on_it():
    """bitesize and biolatency: LINUX_KERNEL_VERSION (libbpf's frozen .kconfig map, so the
    verifier knows it) chooses ctx[1] below 5.11 and ctx[0] from it; below, the tool reads
    through ctx + 8, which the verifier refuses on any program type."""
    code = (ins(0x18, 2) + ins(0, 0)  # 0: r2 = &LINUX_KERNEL_VERSION (relocated)
            + ins(0x61, 3, 2)  # 2: r3 = *(u32 *)(r2 + 0)
            + ins(0xB7, 2, imm=1) + ins(0xB7, 4, imm=0x50B00)  # 3-4: r2 = 1; r4 = 5.11.0
            + ins(0x2D, 4, 3, off=1)  # 5: if r4 > r3 goto +1
            + ins(0xB7, 2, imm=0)  # 6: r2 = 0
            + ins(0x67, 2, imm=3)  # 7: r2 <<= 3
            + ins(0x0F, 1, 2)  # 8: r1 += r2
            + ins(0x79, 7, 1)  # 9: r7 = *(u64 *)(r1 + 0)
            + ins(0x79, 6, 1, off=16)  # 10: r6 = *(u64 *)(r1 + 16)
            + ins(0x95))
    old = analyse(code, kconfig={0: (5 << 16) + (10 << 8)})
    assert old.ctx_moved and 6 not in old.live  # ctx + 8, then loads through it
    new = analyse(code, kconfig={0: (6 << 16) + (1 << 8)})
    assert not new.ctx_moved and 6 in new.live and new.ctx_reads == {(0, 8), (16, 8)}
    unknown = analyse(code)  # no value: the paths disagree on r1, so no claim either way
    assert not unknown.ctx_moved and not unknown.ctx_reads and 6 in unknown.live


@pytest.mark.parametrize("name, essential", [
    ("task_struct___old", "task_struct"), ("task_struct", "task_struct"),
    ("a___b___c", "a___b"), ("__x___", "__x___"), ("x____y", "x____y"),
])
def test_flavours_are_dropped_as_libbpf_documents(name: str, essential: str):
    assert essential_name(name) == essential


def test_an_object_row_is_predicted_by_the_rule_of_the_observed_one():
    secs = {"a": "fentry/vfs_read", "b": "kprobe/vfs_read", "c": "tp/sched/x"}
    progs = {"a": Predicted("attach", "no function"), "b": Predicted("pass"),
             "c": Predicted("pass")}
    inferred = object_prediction("o", progs, secs)  # whether its loader falls back: unknown
    assert inferred is not None and inferred.verdict == "unknown"
    assert inferred.reason.startswith("works only if its loader falls back to b")
    works = object_prediction("o", progs, secs, {"alternatives": [["a", "b"]]})
    assert works is not None and works.verdict == "pass" and "b instead of" in works.reason
    broken = object_prediction("o", {"a": Predicted("pass"), "b": Predicted("pass"),
                                     "c": Predicted("core", "CO-RE: field x.y")}, secs)
    assert broken is not None and broken.verdict == "core" and "program c" in broken.reason
    assert combine({"x": Predicted("pass"), "y": Predicted("unknown")}) == Predicted("unknown")


def test_agreement_is_only_claimed_where_both_sides_speak():
    assert agrees(Predicted("core"), "reject") is True
    assert agrees(Predicted("pass"), "fail") is False
    assert agrees(Predicted("unknown"), "pass") is None
    assert agrees(Predicted("pass"), "crash") is None


def test_reports_list_the_disagreements_first():
    def res(subject: str, status: str, verdict: str, ok: bool | None) -> Result:
        return Result(subject=subject, kernel="7.2", status=status, stage="load",
                      detail="d", prediction={"verdict": verdict, "reason": "why",
                                              "agrees": ok})
    report = Report(kernels=[KernelInfo(id="7.2", release="7.2.0-1-amd64", version="7.2.0")],
                    results=[res("a", "pass", "pass", True), res("b", "reject", "pass", False)])
    assert cells.disagreements(report) == ["b @ 7.2: predicted pass (why); observed reject (d)"]
    term = render_matrix(report)
    assert term.index("observed otherwise (1)") < term.index("why:")
    assert "1 of 2 cells agree, 1 disagree" in term
    assert "### Predicted before booting, observed otherwise (1)" in render_markdown(report)
    back = Report.from_dict(report.to_dict())
    assert back.results[1].prediction == {"verdict": "pass", "reason": "why", "agrees": False}


def test_kallsyms_decides_what_a_kprobe_reaches_and_gives_trampolines_an_address(built, kernels):
    """A kprobe's function is looked up in kallsyms, not BTF: one BTF leaves out attaches
    (5.10/arm64's pahole dropped do_sys_openat2), one inlined away does not, whatever BTF
    says (6.12's blk_account_io_merge_bio: only its .part.0 clone has an address); a
    trampoline needs both BTF and an address."""
    from dataclasses import replace

    model = read_model(built["probes"])
    new = kernels["new"]
    assert "inet_bind" in new.caps.functions
    kprobe_to = {"programs": {"kprobe_missing": {"target": "ebpf_harness_only_in_kallsyms"}}}
    with_syms = replace(new, symbols=frozenset({"ebpf_harness_only_in_kallsyms",
                                                "inet_bind.part.0"}))
    assert predict_object(model, with_syms, kprobe_to)["kprobe_missing"].verdict == "pass"
    assert predict_object(model, new, kprobe_to)["kprobe_missing"].verdict == "attach"  # BTF
    inlined = predict_object(model, with_syms,
                             {"programs": {"kprobe_missing": {"target": "inet_bind"}}})
    got = inlined["kprobe_missing"]
    assert got.verdict == "attach" and "only its clone inet_bind.part.0" in got.reason
    assert "(kallsyms)" in got.reason
    fentry = predict_object(model, with_syms,
                            {"programs": {"fentry_missing": {"target": "inet_bind"}}})
    assert fentry["fentry_missing"].verdict == "attach"
    assert "in this kernel's BTF but not in its symbols" in fentry["fentry_missing"].reason
    # with the address there too, the trampoline attaches
    both = replace(new, symbols=frozenset({"inet_bind"}))
    assert predict_object(model, both, {"programs": {"fentry_missing": {"target": "inet_bind"}}}
                          )["fentry_missing"].verdict == "pass"


def test_a_bpftrace_script_is_refused_for_a_lone_probe_the_kernel_lacks(kernels):
    """bpftrace 0.17 skips the attach points of a list it cannot attach, even all of
    them, and fails on a lone one: only a lone missing place predicts a refusal."""
    from dataclasses import replace

    from harness.bpftrace import probe_blocks
    from harness.predict.model import predict_script

    k = replace(kernels["new"], symbols=frozenset({"inet_bind", "tcp_connect"}))
    lone = probe_blocks("kprobe:ebpf_harness_gone { }\nkprobe:tcp_connect { }")
    got = predict_script(lone, k)
    assert got.verdict == "attach" and got.reason.startswith("kprobe:ebpf_harness_gone: no "
                                                             "function ebpf_harness_gone")
    listed = probe_blocks("kprobe:ebpf_harness_gone, kprobe:ebpf_harness_gone_too { }")
    assert predict_script(listed, k).verdict == "unknown"
    fine = probe_blocks("kprobe:tcp_connect { }\nuprobe:/bin/sh:main { }")
    assert predict_script(fine, k).verdict == "unknown"  # never 'pass': fields are not read
    tp = probe_blocks("tracepoint:sched:ebpf_harness_no_such_event { }")
    assert predict_script(tp, k).verdict == "attach"
    arm = replace(k, arch="arm64", version=KernelVersion.parse("6.1"))
    got = predict_script(probe_blocks("kfunc:inet_bind { }"), arm)
    assert got.verdict == "attach" and "6.4 on arm64" in got.reason
