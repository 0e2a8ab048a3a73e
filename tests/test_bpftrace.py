"""bpftrace scripts as subjects, without a VM: the declaration a script carries, the bad
input refused before any kernel, and the staged verdict read from bpftrace's output
(guest/bpftrace.py's pure parts, with bpftrace 0.17's own words)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.bpftrace import ScriptDecl, read_declaration, task_for
from harness.errors import ConfigError
from harness.guest.bpftrace import classify_output, missing_features, parse_info
from harness.inputs import SCRIPT, inspect
from harness.suite import discover
from harness.versions import KernelVersion

SCRIPT_TEXT = """/* ebpf-harness
trigger = ["/bin/cat", "/etc/hostname"]
expect = 'open \\w+'
min_kernel = "5.5"
feature = "kfunc probes"
requires = ["kfunc"]
arch = ["x86_64"]
settle = 2
*/
kfunc:vfs_open { printf("open %s\\n", str(args->path->dentry->d_name.name)); }
"""


def test_the_declaration_is_read_from_the_comment_block(tmp_path: Path):
    s = tmp_path / "open.bt"
    s.write_text(SCRIPT_TEXT)
    d = read_declaration(s)
    assert d.trigger == ("/bin/cat", "/etc/hostname") and d.expect == r"open \w+"
    assert d.min_kernel == KernelVersion.parse("5.5") and d.requires == ("kfunc",)
    assert d.arch == ("amd64",) and d.settle == 2.0
    assert d.unmet(KernelVersion.parse("5.4.0"), "amd64") == \
        "needs kfunc probes (>= 5.5); this kernel is 5.4.0"
    assert d.unmet(KernelVersion.parse("6.12.0"), "arm64") == \
        "declared for amd64; this kernel is arm64"
    assert d.unmet(KernelVersion.parse("6.12.0"), "amd64") is None
    task = task_for(s, d, None)
    assert task["kind"] == "bpftrace" and task["trigger"] == ["/bin/cat", "/etc/hostname"]
    assert "bpftrace" not in task  # the guest's own, on its PATH


def test_a_sidecar_file_wins_and_a_script_may_declare_nothing(tmp_path: Path):
    s = tmp_path / "plain.bt"
    s.write_text("BEGIN { exit(); }\n")
    assert read_declaration(s) == ScriptDecl(source=str(s))
    (tmp_path / "plain.bt.toml").write_text('expect = "hi"\n')
    assert read_declaration(s).expect == "hi"


@pytest.mark.parametrize("block, words", [
    ('trigger = "cat /etc/hostname"', "trigger must be an argv list"),
    ("expect = '(['", "expect is not a regular expression"),
    ('arch = ["sparc"]', "arch 'sparc'"),
    ('tigger = ["x"]', "tigger"),
])
def test_a_wrong_declaration_is_refused_before_any_kernel(tmp_path: Path, block: str,
                                                          words: str):
    s = tmp_path / "bad.bt"
    s.write_text(f"/* ebpf-harness\n{block}\n*/\nBEGIN {{ exit(); }}\n")
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("[", r"\[")):
        inspect(str(s))


def test_scripts_are_inputs_and_empty_ones_are_refused(tmp_path: Path):
    s = tmp_path / "ok.bt"
    s.write_text("BEGIN { exit(); }\n")
    assert inspect(str(s)).kind == SCRIPT
    (tmp_path / "empty.bt").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        inspect(str(tmp_path / "empty.bt"))


# bpftrace 0.17's own words for each stage (as printed in the guests)
@pytest.mark.parametrize("text, attached, want", [
    ("/x/t.bt:3:1-9: ERROR: syntax error, unexpected identifier, expecting {", False,
     ("fail", "compile")),
    ("/x/t.bt:1:14-20: ERROR: Unknown function: prinft", False, ("fail", "compile")),
    ("Attaching 1 probe...\nERROR: Error attaching probe: 'kprobe:no_such_fn'", True,
     ("fail", "attach")),
    ("/x/t.bt:1:1-25: ERROR: Struct/union of type 'struct _tracepoint_tcp_x' does not "
     "contain a field named 'state'", False, ("fail", "attach")),
    ("ERROR: tracepoint not found: sched:nope", False, ("fail", "attach")),
    ("Attaching 1 probe...\nERROR: Error loading program: kprobe:vfs_read (try -v)\n"
     "0: (85) call bpf_loop#181\nunknown func bpf_loop#181", True, ("reject", "load")),
])
def test_a_failed_run_is_staged_from_what_bpftrace_printed(text: str, attached: bool,
                                                           want: tuple[str, str]):
    status, stage, detail, log = classify_output(text, 1, attached)
    assert (status, stage) == want, detail
    assert "ERROR" in detail
    assert bool(log) == (status == "reject")
    if "kprobe:no_such_fn" in text:
        assert "kprobe:no_such_fn" in detail


def test_info_features_decide_what_is_missing():
    info = parse_info("System\n  OS: Linux 5.10.0\n\nProbe types\n  kprobe: yes\n"
                      "  kfunc: no\n\nKernel features\n  Instruction limit: 1000000\n")
    assert info["Probe types"] == {"kprobe": "yes", "kfunc": "no"}
    assert missing_features(info, ["kprobe", "kfunc", "nonesuch"]) == ["kfunc", "nonesuch"]


def test_the_bundled_bpftrace_programs_declare_a_behaviour():
    bt = [d for d in discover() if d.kind == "bpftrace"]
    assert len(bt) >= 6
    assert {d.domain for d in bt} == {"observability", "security", "networking"}
    for d in bt:
        assert d.script is not None and d.min_kernel is not None and d.feature
        decl = read_declaration(d.script)
        assert decl.trigger and decl.expect, d.id  # each sees its own trigger's event


def test_requirements_of_a_script_name_each_construct_and_its_kernel(tmp_path: Path):
    from tests.conftest import run_cli

    s = tmp_path / "s.bt"
    s.write_text("// kfunc:in_a_comment is not a probe\nBEGIN { printf(\"hi\\n\"); }\n"
                 "kfunc:vfs_open, kprobe:vfs_read { @[comm] = count(); }\n"
                 "tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", str(args->filename)); }\n")
    out = tmp_path / "req.json"
    p = run_cli("requirements", str(s), "--json", str(out))
    assert p.returncode == 0, p.stderr
    import json

    got = json.loads(out.read_text())["scripts"][0]
    assert [u["construct"] for u in got["uses"]] == \
        ["BEGIN", "kfunc", "kprobe", "tracepoint", "comm", "str()", "printf()", "@"]
    assert got["min_kernel"] == "5.5"  # kfunc: fentry on BPF trampolines
    assert "tracing program type (5.5)" in got["because"]
    assert re.search(r"\n  kfunc +tracing program type \(5.5\), trace_fentry attach type", p.stdout)


@pytest.mark.parametrize("text, where", [
    ("BEGIN { printf(\"hi\\n\"); }\nkprobe:f {}\n", "in its BEGIN"),
    ("// BEGIN { in a comment }\nkprobe:f {}\n", "added"),
    ("kprobe:f {}\n", "added"),
    ("BEGIN\n/1 == 1/\n{ exit(); }\n", "none"),
])
def test_the_attached_marker_goes_where_bpftrace_allows_it(tmp_path: Path, text: str,
                                                           where: str):
    """bpftrace prints what probes print only once every probe is attached: the marker
    says when. One BEGIN per script: the marker joins the script's own when it has one."""
    from harness.guest.bpftrace import MARKER, marked_copy

    s = tmp_path / "s.bt"
    s.write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    path, marked = marked_copy(str(s), str(out))
    got = Path(path).read_text()
    assert marked == (where != "none")
    assert got.count("BEGIN") - got.count("// BEGIN") <= 1 or where == "added"
    if where == "in its BEGIN":
        assert got.startswith(f'BEGIN {{ printf("{MARKER}\\n");')
    elif where == "added":
        assert got.startswith(text) and got.rstrip().endswith("}") and MARKER in got
    else:
        assert path == str(s)


def test_a_header_that_does_not_fit_this_kernel_is_named():
    """tcpdrop.bt on 7.2: its #include <net/sock.h> no longer compiles against the kernel's
    headers; bpftrace prints clang's error and no ERROR line of its own."""
    text = ("Attaching 0 probes...\n/lib/modules/7.2.13+deb14-amd64/source/include/net/"
            "sock.h:1836:32: error: no member named 'slock' in 'struct sock'\n")
    status, stage, detail, _ = classify_output(text, 1, False)
    assert (status, stage) == ("fail", "compile")
    assert detail.startswith("the script's C declarations do not compile in this kernel's "
                             "headers: /lib/modules/7.2.13")


def test_a_bpftrace_binary_of_another_architecture_is_refused_for_those_columns(tmp_path: Path):
    from harness.inputs import executable_refusal

    host = Path("/usr/bin/bpftrace")  # the host's: an x86-64 build (quickstart installs it)
    assert executable_refusal(host, "amd64", ["6.12"]) is None
    why = executable_refusal(host, "arm64", ["6.12/arm64", "7.2/arm64"])
    assert why and "x86-64" in why and "6.12/arm64, 7.2/arm64" in why and "build for arm64" in why
    wrapper = tmp_path / "bpftrace"
    wrapper.write_text("#!/bin/sh\nexec /usr/bin/bpftrace \"$@\"\n")
    assert executable_refusal(wrapper, "arm64", ["6.12/arm64"]) is None  # the guest's shell runs it


def test_probe_blocks_are_read_with_the_libbpf_section_of_each_attach_point():
    from harness.bpftrace import probe_blocks

    text = """#include <linux/fs.h>
struct s { int a; };
// kprobe:in_a_comment { }
BEGIN { printf("start"); }
kprobe:blk_account_io_start,
kprobe:__blk_account_io_start
/comm == "dd"/
{ @s[tid] = nsecs; if (1) { @x = 1; } }
kretprobe:vfs_read { }
kprobe:vfs_* { }
kfunc:vmlinux:vfs_open, fentry:tcp_connect { }
kfunc:some_module:fn { }
tracepoint:sched:sched_switch, t:syscalls:sys_enter_exec* { }
rawtracepoint:sched_wakeup { }
uprobe:/bin/bash:readline { }
interval:s:1 { exit(); }
"""
    assert probe_blocks(text) == [
        [("BEGIN", None)],
        [("kprobe:blk_account_io_start", "kprobe/blk_account_io_start"),
         ("kprobe:__blk_account_io_start", "kprobe/__blk_account_io_start")],
        [("kretprobe:vfs_read", "kretprobe/vfs_read")],
        [("kprobe:vfs_*", "kprobe.multi/vfs_*")],
        [("kfunc:vmlinux:vfs_open", "fentry/vfs_open"), ("fentry:tcp_connect", "fentry/tcp_connect")],
        [("kfunc:some_module:fn", None)],
        [("tracepoint:sched:sched_switch", "tp/sched/sched_switch"),
         ("t:syscalls:sys_enter_exec*", None)],
        [("rawtracepoint:sched_wakeup", "raw_tp/sched_wakeup")],
        [("uprobe:/bin/bash:readline", None)],
        [("interval:s:1", None)],
    ]
