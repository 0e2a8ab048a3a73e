"""Bad input is refused before any kernel is resolved, downloaded or booted: exit status
2, one line naming the file and what to do, no traceback, in about a second.

Each command runs in a child process whose session.prepare_kernels and session.execute
exit with status 86 when called, so "no kernel was prepared" is what these tests assert,
not a guess from timing (the time is asserted loosely and printed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import inputs
from harness.errors import ConfigError
from harness.plugin.selection import KernelRef, no_match_reason
from harness.versions import KernelVersion

pytest_plugins = ["pytester"]

GUARD = """
import sys
from harness import cli, session

def refuse(*args, **kwargs):
    print("KERNELS PREPARED", file=sys.stderr)
    sys.exit(86)

session.prepare_kernels = refuse
session.execute = refuse
sys.exit(cli.main(sys.argv[1:]))
"""

HOST_BTF = Path("/sys/kernel/btf/vmlinux")


def harness(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-c", GUARD, *args], cwd=cwd, capture_output=True,
                       text=True, timeout=120, env=_env(cwd))
    return p, time.monotonic() - start


def _env(cwd: Path) -> dict[str, str]:
    import os

    return {**os.environ, "XDG_CACHE_HOME": str(cwd / "cache")}


def assert_refused(p: subprocess.CompletedProcess[str], name: str, *words: str) -> str:
    """Exit 2, one line on stderr naming the file, no traceback, no kernel prepared."""
    assert "KERNELS PREPARED" not in p.stderr
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr and name in lines[0]
    for w in words:
        assert w in lines[0]
    return lines[0]


def _clang(src: str, out: Path, *flags: str) -> Path:
    c = out.with_suffix(".c")
    c.write_text(src)
    subprocess.run(["clang", "-O2", *flags, "-c", str(c), "-o", str(out)], check=True)
    c.unlink()
    return out


PROGRAM = ('__attribute__((section("tracepoint/syscalls/sys_enter_getpid"), used))\n'
           "int prog(void *ctx) { return 0; }\n"
           'char LICENSE[] __attribute__((section("license"), used)) = "GPL";\n')
SUBPROGRAM_ONLY = ("int helper(int x) { return x + 1; }\n"
                   'char LICENSE[] __attribute__((section("license"), used)) = "GPL";\n')


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """One file of each kind, good and bad."""
    d = tmp_path
    (d / "adir").mkdir()
    (d / "text.bpf.o").write_text("hello, not an object\n")
    (d / "empty.bpf.o").write_bytes(b"")
    (d / "binary.bpf.o").write_bytes(bytes(range(256)) * 4)
    good = _clang(PROGRAM, d / "good.bpf.o", "-target", "bpf")
    (d / "damaged.bpf.o").write_bytes(good.read_bytes()[:80])
    return {
        "good": good,
        "x86": _clang("int f(void) { return 0; }\n", d / "x86.o"),
        "noprog": _clang(SUBPROGRAM_ONLY, d / "noprog.bpf.o", "-target", "bpf"),
        "adir": d / "adir",
        "text": d / "text.bpf.o",
        "empty": d / "empty.bpf.o",
        "binary": d / "binary.bpf.o",
        "damaged": d / "damaged.bpf.o",
    }


BAD = [
    ("missing", "no such file"),
    ("adir", "is a directory; give the files (e.g. adir/*.bpf.o)"),
    ("text", "is a text file, not a BPF object"),
    ("empty", "is empty"),
    ("binary", "is not an ELF file"),
    ("x86", "is an object file for x86-64 (EM_X86_64), not BPF; compile BPF programs with "
            "clang -target bpf"),
    ("noprog", "is a BPF object with no programs"),
    ("damaged", "is a damaged"),
    ("true", "is an ELF program with no BPF object inside"),
    ("devnull", "not a regular file"),
]


def _path(files: dict[str, Path], key: str) -> str:
    """As a user types it: relative to the command's directory (the test's)."""
    special = {"missing": "typo.bpf.o", "true": shutil.which("true") or "/bin/true",
               "devnull": "/dev/null"}
    return special.get(key) or files[key].name


@pytest.mark.parametrize(("key", "says"), BAD, ids=[k for k, _ in BAD])
def test_check_refuses_bad_input_before_any_kernel(files, tmp_path, key, says):
    bad = _path(files, key)
    # a good object beside it: the bad one is still refused, and nothing is prepared
    p, took = harness("check", str(files["good"]), bad, "-k", "5.10", cwd=tmp_path)
    line = assert_refused(p, bad, says)
    assert took < 10, f"refusing took {took:.1f}s"
    print(f"check {key}: refused in {took:.2f}s: {line}")


@pytest.mark.parametrize(("key", "says"), BAD, ids=[k for k, _ in BAD])
def test_requirements_refuses_with_the_same_words(files, tmp_path, key, says):
    bad = _path(files, key)
    p, _ = harness("requirements", bad, cwd=tmp_path)
    assert_refused(p, bad, says)


def test_inspect_classifies_good_input(files):
    assert inputs.inspect(str(files["good"])).kind == inputs.OBJECT
    assert inputs.program_sections(files["good"].read_bytes()) == [
        "tracepoint/syscalls/sys_enter_getpid"]
    assert inputs.inspect(str(Path(__file__).parent / "data" / "features.bpf.c")).kind \
        == inputs.SOURCE
    # a BPF object embedded in a program (as a libbpf skeleton does)
    host = files["x86"].read_bytes() + b"\0" * 8 + files["good"].read_bytes()
    kind, objects, problem = inputs.classify(host)
    assert (kind, problem) == (inputs.PROGRAM, "") and objects == (files["good"].read_bytes(),)


def test_inspect_takes_a_skeleton_binary():
    exe = Path(shutil.which("execsnoop") or "/usr/sbin/execsnoop")
    if not exe.exists():
        pytest.fail("libbpf-tools is not installed: run ./quickstart setup")
    found = inputs.inspect(str(exe))
    assert found.kind == inputs.PROGRAM and len(found.objects) == 1


def test_a_source_with_a_syntax_error_is_refused_before_any_kernel(tmp_path):
    if not HOST_BTF.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux: sources wait for the newest kernel's BTF")
    src = tmp_path / "syntax.bpf.c"
    src.write_text('#include "vmlinux.h"\nint prog(void *ctx) { return 0 }\n')
    p, took = harness("check", str(src), "-k", "5.10", cwd=tmp_path)
    line = assert_refused(p, "syntax.bpf.c", "does not compile against this machine's kernel "
                          "BTF", "syntax.bpf.c:2:", "error: expected ';'", "fix the source")
    print(f"check syntax.bpf.c: refused in {took:.2f}s (host vmlinux.h generated): {line}")
    p, took = harness("check", str(src), "-k", "5.10", cwd=tmp_path)
    assert_refused(p, "syntax.bpf.c")
    print(f"check syntax.bpf.c: refused in {took:.2f}s (host vmlinux.h cached)")


def test_a_source_missing_a_kernel_type_waits_for_the_newest_kernel(tmp_path):
    """A type this machine's BTF lacks may be in a newer kernel's: not refused before the
    kernels are prepared; refused after (here: prepare_kernels is the guard's)."""
    if not HOST_BTF.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    src = tmp_path / "newer.bpf.c"
    src.write_text('#include "vmlinux.h"\n'
                   "int prog(struct only_in_a_future_kernel *x) { return x->field; }\n")
    p, _ = harness("check", str(src), "-k", "5.10", cwd=tmp_path)
    assert "KERNELS PREPARED" in p.stderr and p.returncode == 86


def test_kernel_could_mend():
    assert inputs.kernel_could_mend("x.c:2:9: error: unknown type name 'bpf_arena_t'")
    assert inputs.kernel_could_mend("x.c:2:9: error: incomplete definition of type 'struct s'")
    assert inputs.kernel_could_mend("x.c:3:1: error: no member named 'f' in 'struct task'")
    assert inputs.kernel_could_mend("x.c:3:1: error: use of undeclared identifier 'BPF_X'")
    assert not inputs.kernel_could_mend("x.c:3:1: error: expected ';' after return statement")
    assert not inputs.kernel_could_mend("x.c:1:10: fatal error: 'mine.h' file not found")


def test_compile_refusal_is_one_line_naming_the_file():
    e = inputs.compile_refusal("a.bpf.c", "a.bpf.c does not compile: /x/a.bpf.c:1:2: error: "
                               "boom", "the vmlinux.h of 7.3")
    assert str(e) == ("a.bpf.c: does not compile against the vmlinux.h of 7.3: /x/a.bpf.c:1:2: "
                      "error: boom; fix the source, or give the compiled .bpf.o")


# -- output paths and option pairs ---------------------------------------------------------


def _results(path: Path) -> Path:
    from harness.results import KernelInfo, Report, Result

    Report(kernels=[KernelInfo("5.10", "5.10.0-32-amd64", "5.10.223")],
           results=[Result("a.bpf.o:p", "5.10", "pass", "attach")]).write(path)
    return path


@pytest.mark.parametrize("argv", [
    ["check", "{good}", "--json", "{dir}"],
    ["check", "{good}", "--md", "{dir}"],
    ["check", "{good}", "--html", "{dir}"],
    ["check", "{good}", "--junit", "{dir}"],
    ["matrix", "--json", "{dir}"],
    ["requirements", "{good}", "--json", "{dir}"],
    ["report", "render", "{r}", "-o", "{dir}"],
    ["report", "merge", "{r}", "-o", "{dir}"],
    ["report", "badge", "{r}", "-o", "{dir}"],
    ["report", "diff", "{r}", "{r}", "-o", "{dir}"],
    ["report", "schema", "-o", "{dir}"],
    ["kernels", "lock", "5.10", "-o", "{dir}"],
], ids=lambda a: " ".join(w for w in a if "{" not in w))
def test_an_output_path_that_is_a_directory(files, tmp_path, argv):
    r = _results(tmp_path / "r.json")
    words = [w.format(good=files["good"], dir=files["adir"], r=r) for w in argv]
    p, _ = harness(*words, cwd=tmp_path)
    assert_refused(p, str(files["adir"]), "is a directory; give a file path")


@pytest.mark.parametrize("argv", [
    ["report", "render", "{dir}"],
    ["report", "diff", "{r}", "{dir}"],
    ["check", "{good}", "--baseline", "{dir}"],
])
def test_a_results_input_that_is_a_directory(files, tmp_path, argv):
    r = _results(tmp_path / "r.json")
    words = [w.format(good=files["good"], dir=files["adir"], r=r) for w in argv]
    p, _ = harness(*words, cwd=tmp_path)
    assert_refused(p, str(files["adir"]), "is a directory; give the", "results JSON file")


def test_max_insns_growth_needs_a_baseline_and_a_positive_value(files, tmp_path):
    r = _results(tmp_path / "r.json")
    p, _ = harness("check", str(files["good"]), "--max-insns-growth", "5", cwd=tmp_path)
    assert_refused(p, "--max-insns-growth", "needs --baseline")
    p, _ = harness("check", str(files["good"]), "--baseline", str(r), "--max-insns-growth",
                   "-5", cwd=tmp_path)
    assert_refused(p, "--max-insns-growth -5", "0 or more")
    p, _ = harness("report", "diff", str(r), str(r), "--max-insns-growth", "-1", cwd=tmp_path)
    assert_refused(p, "--max-insns-growth -1", "0 or more")
    p, _ = harness("report", "diff", str(r), str(r), "--max-insns-growth", "0", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def test_output_and_input_helpers(tmp_path):
    inputs.output_file(None, "--json")
    inputs.output_file(tmp_path / "new.json", "--json")
    with pytest.raises(ConfigError, match=r"--md .*: is a directory; give a file path \(e\.g\. "
                                          r".*report\.md\)"):
        inputs.output_file(tmp_path, "--md")
    with pytest.raises(ConfigError, match="no such file; give the results JSON file"):
        inputs.input_file(tmp_path / "absent.json", "results JSON")


# -- the plugin: asked-for kernels that a marker excludes -----------------------------------


def test_no_match_reason_names_the_kernels_and_the_range():
    refs = [KernelRef(i, i, KernelVersion.parse(i)) for i in ("5.10", "7.3")]
    assert no_match_reason(refs, (">=6.1", "<7.0")) == "no kernel of 5.10, 7.3 matches >=6.1,<7.0"


def test_plugin_skip_says_which_kernels_and_range(pytester: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch):
    from test_plugin import bzimage

    monkeypatch.setenv("XDG_CACHE_HOME", str(pytester.path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")  # the skip reason whole on its -v line
    a = bzimage(pytester.path / "bzA", "5.10.0-t")
    b = bzimage(pytester.path / "bzB", "7.3.0-t")
    pytester.makepyfile(test_r="import pytest\n\n"
                        "@pytest.mark.kernels('>=6.1,<7.0')\n"
                        "def test_x():\n    pass\n\n"
                        "def test_k(kernel):\n    pass\n")
    r = pytester.runpytest_subprocess("--kernels", f"{a},{b}", "--ebpf-backend", "local",
                                      "-p", "no:cacheprovider", "-v")
    out = r.stdout.str()
    assert "NOTSET" not in out and "empty parameter set" not in out
    r.stdout.fnmatch_lines([
        "*test_x[[]no-kernel[]] SKIPPED (no kernel of 5.10.0-t, 7.3.0-t matches >=6.1,<7.0)*",
        "*test_k[[]5.10.0-t[]] PASSED*",
        "*test_k[[]7.3.0-t[]] PASSED*",
    ])


def test_a_missing_setup_file(files, tmp_path):
    p, _ = harness("check", str(files["good"]), "--setup", "nope.setup.toml", cwd=tmp_path)
    assert_refused(p, "--setup nope.setup.toml", "no such file or directory")
