"""Users' real objects, without a VM: what is read from the ELF and its BTF, the set-up
file, alternatives and the object's row. The objects are Debian's libbpf-tools (written
by nobody here), taken out of the installed binaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bpfobj import btf
from harness.bpfobj.elf import read_object
from harness.bpfobj.setup import encode, find_setup, load_setup, parse_setup, resolve
from harness.bpfobj.verdict import alternative_key, groups, hook, is_placeholder, object_row
from harness.build.skeleton import embedded_objects
from harness.errors import ConfigError
from harness.kernels.model import KernelSpec
from harness.orchestrator import Subject, collect
from harness.report.diff import diff
from harness.report.terminal import render_matrix
from harness.results import Report, Result
from harness.versions import KernelVersion
from harness.vm.backend import VMOutcome


def tool_object(tmp_path: Path, tool: str) -> Path:
    exe = Path("/usr/sbin") / tool
    if not exe.exists():
        pytest.fail("libbpf-tools is not installed: run ./quickstart setup")
    [data] = embedded_objects(exe.read_bytes())
    out = tmp_path / f"{tool}.bpf.o"
    out.write_bytes(data)
    return out


def test_programs_maps_and_typed_variables_of_a_real_object(tmp_path: Path):
    info = read_object(tool_object(tmp_path, "biolatency"))
    assert info.programs["block_rq_issue_btf"] == "tp_btf/block_rq_issue"
    assert info.programs["block_rq_issue"] == "raw_tp/block_rq_issue"
    assert {"start", "hists"} <= set(info.maps)
    v = info.variables["targ_dev"]
    assert (v.section, v.size) == (".rodata", 4)
    assert info.btf is not None and info.btf.describe(v.type_id) == "const volatile __u32"
    t = info.btf.resolve(v.type_id)
    assert t is not None and t.kind == btf.INT and info.btf.size_of(v.type_id) == 4


def test_a_corrupt_btf_section_is_an_error_not_a_crash():
    with pytest.raises(btf.BTFError):
        btf.parse(b"\x9f\xeb\x01\x00" + b"\x18\x00\x00\x00" + b"\xff" * 16)
    with pytest.raises(btf.BTFError):
        btf.parse(b"not btf at all, not btf at all")


def test_not_an_object_is_a_clear_error(tmp_path: Path):
    p = tmp_path / "x.bpf.o"
    p.write_bytes(b"\x7fELF garbage")
    with pytest.raises(ConfigError, match=r"x\.bpf\.o"):
        read_object(p)


def test_set_up_file_resolved_against_the_object(tmp_path: Path):
    obj = read_object(tool_object(tmp_path, "capable"))
    setup = parse_setup({
        "maps": {"stackmap": {"max_entries": 4096}},
        "variables": {"targ_pid": -1, "kernel_stack": True, "unique_type": "UNQ_PID"},
        "programs": {"kprobe__cap_capable_exit": {"autoload": False}},
    }, "capable.setup.toml")
    task = resolve(setup, obj)
    data = {d["name"]: d for d in task["data"]}
    assert data["targ_pid"]["hex"] == "ffffffff" and data["targ_pid"]["section"] == ".rodata"
    assert data["kernel_stack"]["hex"] == "01"
    assert data["unique_type"]["hex"] != "00000000"  # an enum value by name
    assert task["maps"] == {"stackmap": {"max_entries": 4096}}
    assert task["programs"]["kprobe__cap_capable_exit"]["autoload"] is False


@pytest.mark.parametrize("doc, message", [
    ({"mapz": {}}, "unknown key 'mapz'; known keys there: alternatives, maps"),
    ({"maps": {"stackmap": {"max_entries": 0}}}, "positive integer"),
    ({"maps": {"stackmap": {"entries": 1}}}, "unknown key 'maps.stackmap.entries'"),
    ({"maps": {"nosuch": {"max_entries": 1}}}, "no map 'nosuch'.*stackmap"),
    ({"variables": {"nosuch": 1}}, "no global variable 'nosuch'.*targ_pid"),
    ({"variables": {"kernel_stack": 300}}, "300 does not fit in 1 bytes"),
    ({"variables": {"unique_type": "UNQ_NOPE"}}, "not one of"),
    ({"programs": {"nosuch": {"autoload": False}}}, "no program 'nosuch'"),
    ({"programs": {"kprobe__cap_capable_entry": {"autoload": "no"}}}, "true or false"),
    ({"alternatives": [{"programs": ["kprobe__cap_capable_entry"]}]}, "two or more"),
])
def test_set_up_mistakes_name_the_file_and_the_name(tmp_path: Path, doc: dict, message: str):
    obj = read_object(tool_object(tmp_path, "capable"))
    with pytest.raises(ConfigError, match=message) as e:
        resolve(parse_setup(doc, "capable.setup.toml"), obj)
    assert "capable.setup.toml" in str(e.value)


def test_targets_must_fit_their_section():
    from harness.bpfobj.setup import check_target

    check_target("kprobe/dummy", "vfs_read", "w")
    for sec, bad in (("tracepoint/x/y", "sched_switch"), ("uprobe", "readline"),
                     ("usdt", "/bin/x:probe"), ("perf_event", "cycles")):
        with pytest.raises(ConfigError):
            check_target(sec, bad, "w")


def test_strings_and_arrays_encode_by_their_btf_type():
    types = [btf.BtfType(0, 0, "void", 0),
             btf.BtfType(1, btf.INT, "char", 1, extra=(btf.INT_SIGNED << 24 | 8,)),
             btf.BtfType(2, btf.ARRAY, "", 0, extra=(1, 8)),
             btf.BtfType(3, btf.INT, "unsigned int", 4, extra=(32,))]
    b = btf.BTF(types)
    assert encode("bash", 8, b, 2, "v") == b"bash\0\0\0\0"
    with pytest.raises(ConfigError, match="does not fit"):
        encode("12345678", 8, b, 2, "v")
    assert encode(4_000_000_000, 4, b, 3, "v") == (4_000_000_000).to_bytes(4, "little")


def test_set_up_files_are_found_beside_the_object_or_in_a_directory(tmp_path: Path):
    obj = tmp_path / "biolatency.bpf.o"
    obj.write_bytes(b"")
    assert find_setup(obj, None) is None
    beside = tmp_path / "biolatency.setup.toml"
    beside.write_text("[variables]\ntarg_ms = true\n")
    assert find_setup(obj, None) == beside
    d = tmp_path / "setups"
    d.mkdir()
    (d / "biolatency.setup.toml").write_text("")
    assert find_setup(Path("/usr/sbin/biolatency"), d) == d / "biolatency.setup.toml"
    assert find_setup(Path("/usr/sbin/opensnoop"), d) is None
    with pytest.raises(ConfigError, match="no such file"):
        find_setup(obj, tmp_path / "missing.toml")
    bad = tmp_path / "bad.setup.toml"
    bad.write_text("[variables\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_setup(bad)


def test_hooks_placeholders_and_alternative_keys():
    assert hook("fentry/vfs_read") == ("function", "vfs_read")
    assert hook("tracepoint/sched/sched_switch") == ("tracepoint", "sched/sched_switch")
    assert hook("perf_event") is None
    assert is_placeholder("dummy_file_read") and is_placeholder("foo")
    assert not is_placeholder("vfs_read") and not is_placeholder("food_chain")
    assert alternative_key("fentry/blk_account_io_start") == \
        alternative_key("kprobe/__blk_account_io_start")
    assert alternative_key("fexit/vfs_read") != alternative_key("fentry/vfs_read")
    assert alternative_key("tp_btf/sched_switch") == alternative_key("raw_tp/sched_switch")


def test_groups_inferred_and_declared():
    secs = {"a_btf": "tp_btf/block_rq_issue", "a_raw": "raw_tp/block_rq_issue",
            "k": "kprobe/vfs_read", "f": "fentry/vfs_read", "x": "kprobe/account_page_dirtied",
            "y": "kprobe/folio_account_dirtied", "alone": "tracepoint/sched/sched_switch"}
    gs = groups(secs, [["y", "x"]], set())
    by = {g.programs: g for g in gs}
    assert by[("a_btf", "a_raw")].inferred and by[("f", "k")].inferred  # BTF-based first
    assert not by[("y", "x")].inferred and by[("alone",)].programs == ("alone",)
    # two programs on the very same hook by the same mechanism both run: not alternatives
    same = groups({"a": "tracepoint/syscalls/sys_enter_getpid",
                   "b": "tracepoint/syscalls/sys_enter_getpid"}, [], set())
    assert [g.programs for g in same] == [("a",), ("b",)]


def row(name: str, status: str, section: str, cause: str = "", detail: str = "") -> Result:
    return Result(f"obj:{name}", "7.2", status, "attach" if status == "fail" else "load",
                  detail or status, cause=cause, section=section, row="program", parent="obj",
                  info=True)


def test_object_works_through_an_alternative():
    rows = {"f": row("f", "reject", "fentry/__blk_account_io_start", "hook-missing"),
            "k": row("k", "pass", "kprobe/blk_account_io_start"),
            "t": row("t", "pass", "tp_btf/sched_switch")}
    secs = {n: x.section for n, x in rows.items()}
    # inferred from the sections only: whether the tool's loader falls back to k is its
    # loader's to say, so not a plain pass (biotop on 7.2 read 'works' and the tool failed)
    r = object_row("obj", "7.2", rows, secs, [], set())
    assert (r.status, r.row, r.expected, r.cause) == ("setup", "object", "pass", "needs-setup")
    assert r.detail.startswith("works only if its loader falls back to k (in place of "
                               "fentry/__blk_account_io_start: function __blk_account_io_start "
                               "missing)")
    assert "alternatives inferred: entry of blk_account_io_start" in r.detail
    # declared in a set-up file: the loader's own word, a pass that says which one carried it
    r = object_row("obj", "7.2", rows, secs, [["f", "k"]], set())
    assert (r.status, r.expected) == ("pass", "pass")
    assert "k instead of fentry/__blk_account_io_start: function __blk_account_io_start missing" \
        in r.detail


def test_object_broken_names_the_group_and_why():
    rows = {"f": row("f", "reject", "fentry/gone_fn", "hook-missing", "no BTF id"),
            "k": row("k", "fail", "kprobe/gone_fn", "hook-missing", "ENOENT"),
            "t": row("t", "pass", "tp_btf/sched_switch")}
    r = object_row("obj", "7.2", rows, {n: x.section for n, x in rows.items()}, [], set())
    assert r.status == "fail" and r.cause == "hook-missing"
    assert r.detail.startswith("broken: entry of gone_fn (f, k) has no working alternative")


def test_optional_and_switched_off_programs_do_not_break_the_object():
    rows = {"o": row("o", "reject", "?fentry/x", "verifier-rejection"),
            "off": row("off", "skip", "kprobe/y", "switched-off"),
            "t": row("t", "pass", "tp_btf/sched_switch")}
    r = object_row("obj", "7.2", rows, {n: x.section for n, x in rows.items()}, [], {"o"})
    assert r.status == "pass" and "optional o not working" in r.detail


def test_placeholder_targets_make_the_object_need_set_up_not_fail():
    s = Subject("fsdist", {"kind": "object", "path": "/x"}, expands=True)
    k = KernelSpec("7.2", "7.2.0-amd64", KernelVersion.parse("7.2.0"), Path("/k"), None)
    ev = [{"event": "boot"},
          {"event": "plan", "subject": "fsdist", "programs": ["fsdist:e", "fsdist:f"],
           "sections": {"e": "kprobe/dummy_file_read", "f": "fentry/dummy_file_read"}},
          {"event": "result", "subject": "fsdist:e", "status": "fail", "stage": "attach",
           "detail": "attach kprobe/dummy_file_read: No such file or directory (2)"},
          {"event": "result", "subject": "fsdist:f", "status": "reject", "stage": "load",
           "detail": "failed to find kernel BTF type ID of 'dummy_file_read': -3"}]
    _, results = collect(k, [s], ev, "", VMOutcome(0, 1.0))
    obj, e, f = results
    assert obj.subject == "fsdist" and obj.status == "setup" and obj.cause == "needs-setup"
    assert e.status == f.status == "setup" and "[programs.e] target" in e.detail
    rep = Report(kernels=[], results=results)
    assert not rep.ok and rep.counts() == (0, 1)
    # a real function that is missing is a portability fact, named
    ev[2] = dict(ev[2], detail="attach kprobe/vfs_read: No such file or directory (2)")
    ev[1]["sections"]["e"] = "kprobe/vfs_read"
    _, (_, e2, _) = collect(k, [s], ev, "", VMOutcome(0, 1.0))
    assert e2.status == "fail" and e2.detail.startswith("hook missing: function 'vfs_read'")


def test_the_verdict_moves_to_program_rows_on_request_and_the_gate_follows():
    prog = row("k", "reject", "kprobe/x", "hook-missing")
    base_prog = row("k", "pass", "kprobe/x")
    obj = Result("obj", "7.2", "pass", "attach", "works", row="object")
    new, base = Report(results=[obj, prog]), Report(results=[obj, base_prog])
    assert new.ok and new.counts() == (1, 1)
    assert not diff(base, new).failed  # an information row changed; the object still works
    per = new.view(per_program=True)
    assert not per.ok and per.counts() == (0, 1) and per.results[0].info
    assert diff(base.view(True), per).failed
    text = render_matrix(new)
    assert "└ k" in text and "(object rows)" in text
    back = Report.from_dict(per.to_dict())
    assert back.per_program and back.results[1].row == "program"
