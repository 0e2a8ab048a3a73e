"""Requirements inference without a VM: what each program needs, read from the object,
and its minimum kernel, on small objects that each use one feature."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from harness.bpfobj import insns
from harness.bpfobj.requirements import (
    Need,
    program_types,
    requirements,
    summarize,
    table,
)
from harness.build.compile import compile_bpf
from harness.kernels.model import KernelSpec
from harness.orchestrator import Subject, collect
from harness.results import Report
from harness.versions import KernelVersion
from harness.vm.backend import VMOutcome
from tests.conftest import run_cli

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def obj(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("req")
    (d / "vmlinux.h").write_text("/* not used: the source includes only UAPI headers */\n")
    return compile_bpf(DATA / "requirements.bpf.c", d / "out", d / "vmlinux.h")


@pytest.mark.parametrize("program, minimum, because", [
    ("uses_ringbuf", "5.8", {("helper", "bpf_ringbuf_output"), ("map_type", "ringbuf")}),
    ("uses_loop", "5.17", {("helper", "bpf_loop")}),
    ("uses_func_ip", "5.15", {("helper", "bpf_get_func_ip")}),
    ("uses_kfunc", "6.2", {("kfunc", "bpf_rcu_read_lock"), ("kfunc", "bpf_rcu_read_unlock")}),
    ("uses_lsm", "5.7", {("prog_type", "lsm"), ("attach_type", "lsm_mac")}),
    ("uses_task_storage", "5.11", {("helper", "bpf_task_storage_get"),
                                   ("helper", "bpf_get_current_task_btf"),
                                   ("map_type", "task_storage")}),
    ("uses_kprobe_multi", "5.18", {("attach_type", "trace_kprobe_multi")}),
    ("uses_tcx", "6.6", {("attach_type", "tcx_ingress")}),
    ("plain_xdp", "4.8", {("prog_type", "xdp")}),
])
def test_each_feature_named_with_its_minimum_kernel(obj: Path, program: str, minimum: str,
                                                   because: set[tuple[str, str]]):
    progs = {p.name: p for p in requirements(obj)}
    p = progs[program]
    assert p.min_kernel == minimum
    assert {(n.kind, n.name) for n in p.because} == because
    assert all(n.since for n in p.because) and not p.unknown


def test_callbacks_and_their_subprograms_are_followed(obj: Path):
    loop = {p.name: p for p in requirements(obj)}["uses_loop"]
    assert ("insn", "callbacks") in {(n.kind, n.name) for n in loop.needs}


def ins(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, dst | src << 4, off, imm)


@pytest.mark.parametrize("code, feature", [
    (ins(0x16, off=1), "jmp32"),  # JMP32 | JEQ
    (ins(0x06, imm=4), "cpu_v4_gotol"),  # JMP32 | JA
    (ins(0xE5, off=1), "may_goto"),  # JMP | JCOND
    (ins(0xA5, off=1), "cpu_v2_jumps"),  # JMP | JLT
    (ins(0x91, src=1, off=8), "cpu_v4_ldsx"),  # LDX | MEMSX | B
    (ins(0xBF, src=1, off=16), "cpu_v4_movsx"),  # ALU64 | MOV | X, off 16
    (ins(0x3F, src=1, off=1), "cpu_v4_sdiv_smod"),  # ALU64 | DIV | X, off 1
    (ins(0xD7, imm=32), "cpu_v4_bswap"),  # ALU64 | END
    (ins(0xDB, src=1, imm=0x01), "atomic_fetch_add"),  # STX | ATOMIC | DW
    (ins(0xDB, src=1, imm=0xF1), "atomic_xchg_cmpxchg"),
    (ins(0xDB, src=1, imm=0x50), "atomic_bitwise"),
    (ins(0xDB, src=1, imm=0x00), "atomic_add"),
    (ins(0xBF, src=1, off=1, imm=1), "addr_space_cast"),
    (ins(0x04, imm=1), "alu32"),
])
def test_instruction_features_from_raw_instructions(code: bytes, feature: str):
    u = insns.Usage()
    insns._features(code + ins(0x95), {}, set(), set(), u)
    assert feature in u.insn
    assert table()["insn"][feature]["since"]


def test_the_table_covers_every_helper_and_what_libbpf_names():
    t = table()
    ids = sorted(v["id"] for v in t["helper"].values())
    assert ids == list(range(1, max(ids) + 1)) and max(ids) >= 211
    from harness.guest import libbpf

    for i in range(1, 64):
        name = libbpf.prog_type_str(i)
        if name:
            assert name.decode() in t["prog_type"], name
        name = libbpf.map_type_str(i)
        if name:
            assert name.decode() in t["map_type"], name
    for entry in (*t["helper"].values(), *t["kfunc"].values()):
        KernelVersion.parse(entry["since"])


def test_sections_map_to_program_and_attach_types():
    assert program_types("kprobe/vfs_read") == ("kprobe", "")
    assert program_types("?tp_btf/sched_switch") == ("tracing", "trace_raw_tp")
    assert program_types("fentry.s/x") == ("tracing", "trace_fentry")
    assert program_types("cgroup/connect4") == ("cgroup_sock_addr", "cgroup_inet4_connect")
    assert program_types("xdp.frags") == ("xdp", "xdp")
    assert program_types("tp/sched/x") == ("tracepoint", "")
    assert program_types("no_such_section") is None


def test_btf_kinds_libbpf_sanitizes_do_not_raise_the_minimum():
    p = summarize("p", "xdp", [Need("prog_type", "xdp", "4.8"), Need("btf", "type_tag", "5.17")])
    assert p.min_kernel == "4.8"


def test_requirements_command_and_json(obj: Path, tmp_path: Path):
    out = tmp_path / "req.json"
    r = run_cli("requirements", str(obj), "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "uses_loop" in r.stdout and "bpf_loop helper (5.17)" in r.stdout
    d = json.loads(out.read_text())
    prog = next(p for p in d["objects"][0]["programs"] if p["name"] == "uses_loop")
    assert prog["min_kernel"] == "5.17"
    assert {"kind": "helper", "name": "bpf_loop", "since": "5.17"}.items() <= prog["because"][0].items()
    bad = run_cli("requirements", str(tmp_path / "nope.bpf.o"))
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr


def test_rejections_below_the_minimum_are_explained_and_above_it_unexplained(obj: Path):
    needs = {p.name: p for p in requirements(obj)}
    s = Subject("o.bpf.o", {"kind": "object", "path": str(obj)}, expands=True, needs=needs)
    ev = [{"event": "boot"},
          {"event": "result", "subject": "o.bpf.o:uses_loop", "status": "reject",
           "stage": "load", "detail": "invalid func unknown#181", "section": "tp/x/y"}]

    def run(ver: str):
        k = KernelSpec(ver, f"{ver}-amd64", KernelVersion.parse(ver), Path("/k"), None)
        _, res = collect(k, [s], ev, "", VMOutcome(0, 1.0))
        return next(r for r in res if r.subject == "o.bpf.o:uses_loop")

    old = run("5.10.0")
    # nothing declared: the prediction is the expectation, so this is a refusal as expected
    assert old.expected_reason == ("needs bpf_loop helper (5.17), callbacks (5.13) (>= 5.17); "
                                   "this kernel is 5.10.0")
    assert old.detail == "invalid func unknown#181"
    assert (old.status, old.expected, old.expected_by, old.as_expected) == \
        ("reject", "refusal", "prediction", True)
    assert (old.cause, old.predicted, old.unexplained) == ("missing-helper", "5.17", False)
    new = run("6.1.0")
    assert new.unexplained and new.predicted == "5.17"


def test_declarations_compared_with_the_object():
    from harness.bpfobj.requirements import ProgramNeeds, check_declaration

    needs = {"p": summarize("p", "tp/x/y", [Need("helper", "bpf_loop", "5.17")])}
    assert check_declaration("o/p", KernelVersion.parse("5.17"), "bpf_loop", needs) is None
    low = check_declaration("o/p", KernelVersion.parse("5.10"), "", needs)
    assert low is not None and "declares min_kernel 5.10" in low and "bpf_loop helper (5.17)" in low
    high = check_declaration("o/p", KernelVersion.parse("6.1"), "BPF links", needs)
    assert high is not None and "declared for: BPF links" in high
    assert check_declaration("o/p", None, "", needs) is None
    assert check_declaration("o/p", KernelVersion.parse("5.1"), "", {"p": ProgramNeeds("p", "")}) is None


def test_predicted_next_to_observed_and_backports_named():
    from harness.report.cells import predictions
    from harness.report.terminal import render_matrix
    from harness.results import KernelInfo, Report, Result

    ks = [KernelInfo("5.10", "5.10.0", "5.10.223"), KernelInfo("6.1", "6.1.0", "6.1.150")]
    rep = Report(kernels=ks, results=[
        Result("late", "5.10", "reject", "load", "x", predicted="5.17"),
        Result("late", "6.1", "pass", "attach", "ok", predicted="5.17"),
        Result("backport", "5.10", "pass", "attach", "ok", predicted="5.17"),
        Result("backport", "6.1", "pass", "attach", "ok", predicted="5.17"),
        Result("odd", "6.1", "reject", "load", "too complex", predicted="5.8", unexplained=True),
        Result("odd", "5.10", "pass", "attach", "ok", predicted="5.8"),
    ], notes=["o/p: declares min_kernel 5.10 but its object needs bpf_loop helper (5.17)"])
    lines = predictions(rep)
    assert "late: predicted 5.17, passes from 6.1" in lines
    assert any(x.startswith("backport: predicted 5.17, passes from 5.10; passes below its "
                            "prediction on 5.10 (a backport)") for x in lines)
    text = render_matrix(rep)
    why = text.split("why:")[1]
    assert why.index("odd @ 6.1 [UNEXPLAINED") < why.index("late @ 5.10")  # worth a look first
    assert "note: o/p: declares min_kernel 5.10" in text
    assert Report.from_dict(rep.to_dict()).notes == rep.notes


def test_an_object_below_its_minimum_is_an_expected_refusal_and_a_pass_there_a_backport(
        obj: Path):
    needs = {p.name: p for p in requirements(obj)}
    s = Subject("o.bpf.o", {"kind": "object", "path": str(obj)}, expands=True,
                needs={"uses_loop": needs["uses_loop"], "plain_xdp": needs["plain_xdp"]})
    k = KernelSpec("5.10", "5.10.0-amd64", KernelVersion.parse("5.10.223"), Path("/k"), None)
    ev = [{"event": "boot"},
          {"event": "plan", "subject": "o.bpf.o", "programs": ["o.bpf.o:uses_loop",
                                                               "o.bpf.o:plain_xdp"]},
          {"event": "result", "subject": "o.bpf.o:uses_loop", "status": "reject",
           "stage": "load", "detail": "invalid func unknown#181", "section": "tp/x/y"},
          {"event": "result", "subject": "o.bpf.o:plain_xdp", "status": "pass",
           "stage": "attach", "detail": "ok", "section": "xdp"}]
    _, res = collect(k, [s], ev, "", VMOutcome(0, 1.0))
    rep = Report(results=res)
    obj_row = rep.cell("o.bpf.o", "5.10")
    # what happened (the object's loader would fail), and beside it, that it was expected
    assert (obj_row.status, obj_row.expected, obj_row.expected_by) == \
        ("reject", "refusal", "prediction") and rep.ok
    assert obj_row.detail.startswith("broken: program uses_loop has no working alternative")
    assert obj_row.expected_reason.startswith("program uses_loop: needs bpf_loop helper (5.17)")
    assert rep.view(True).ok  # per program: the expected refusal and a pass
    ev[2] = dict(ev[2], status="pass", detail="ok")
    _, res = collect(k, [s], ev, "", VMOutcome(0, 1.0))
    loop = next(r for r in res if r.subject == "o.bpf.o:uses_loop")
    assert loop.status == "pass" and "below its predicted minimum 5.17: a backport of " \
        "bpf_loop helper (5.17)" in loop.detail
    obj_row = Report(results=res).cell("o.bpf.o", "5.10")
    assert (obj_row.status, obj_row.expected, obj_row.as_expected) == ("pass", "refusal", True)


def test_a_damaged_btf_is_a_clear_error(obj: Path, monkeypatch: pytest.MonkeyPatch):
    from harness.bpfobj import btf as btfmod
    from harness.bpfobj import requirements as req
    from harness.errors import ConfigError

    damaged = req.read_object(obj)
    assert damaged.btf is not None
    # a .maps variable whose type id points outside the table
    sec = next(t for t in damaged.btf.of_kind(btfmod.DATASEC) if t.name == ".maps")
    sec.members[0].type = 10**6
    monkeypatch.setattr(req, "read_object", lambda _p: damaged)
    with pytest.raises(ConfigError, match="BTF is damaged"):
        requirements(obj)


def test_arm64_gets_some_features_later_and_the_prediction_follows(obj: Path):
    """A BPF trampoline on a kernel function came to arm64 in 6.4 (ftrace direct calls;
    x86-64: 5.5; LSM programs use them too): the table says so, the minimum on arm64
    follows, and a 5.10/arm64 column predicts the refusal that 5.10 on x86-64 does not."""
    needs = {p.name: p for p in requirements(obj)}
    lsm = needs["uses_lsm"]
    assert lsm.min_kernel == "5.7"
    minimum, because = lsm.minimum_on("arm64")
    assert minimum == "6.4" and {(n.kind, n.name) for n in because} == {("attach_type", "lsm_mac")}
    assert lsm.to_dict()["min_kernel_arm64"] == "6.4"
    assert "min_kernel_arm64" not in needs["uses_ringbuf"].to_dict()  # the same on both
    s = Subject("o.bpf.o", {"kind": "object", "path": str(obj)}, expands=True, needs=needs)
    ev = [{"event": "boot"}, {"event": "result", "subject": "o.bpf.o:uses_lsm",
                              "status": "fail", "stage": "attach", "section": "lsm/file_open",
                              "detail": "attach lsm: Operation not supported (524)"}]
    for arch, expected in (("amd64", "pass"), ("arm64", "refusal")):
        k = KernelSpec("5.10", "5.10.0-32-" + arch, KernelVersion.parse("5.10.223"), Path("/k"),
                       None, arch=arch)
        _, res = collect(k, [s], ev, "", VMOutcome(0, 1.0))
        cell = next(r for r in res if r.subject == "o.bpf.o:uses_lsm")
        assert cell.expected == expected, (arch, cell.expected_reason)
    assert "lsm_mac attach type (6.4 on arm64)" in cell.expected_reason
