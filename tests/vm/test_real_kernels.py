"""The whole path on real Debian kernels under virtme-ng: fetched and verified from the
archive, booted (TCG where KVM is not usable), programs loaded by libbpf and BCC inside.

One VM per kernel for the whole module (TCG is slow): every subject below runs in it,
and the last subject crashes the oldest kernel on purpose, so the crash handling is
proven without an extra boot. Among them, a corpus nobody here wrote: eleven of Debian's
libbpf-tools, their objects checked with set-up files that mirror each tool's default
options (tests/corpus/setup), and the same tools run for real as the ground truth.
Kernels: EBPF_HARNESS_TEST_KERNELS (default 5.10 and the newest line, 7.3).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from harness.config import load_config
from harness.report.progress import Progress
from harness.report.terminal import render_matrix
from harness.results import Report
from harness.session import (
    execute,
    prepare_kernels,
    subject_for_command,
    subjects_for_paths,
    subjects_for_suite,
)

pytestmark = pytest.mark.vm

DATA = Path(__file__).resolve().parent.parent / "data"
CORPUS = Path(__file__).resolve().parent.parent / "corpus"
TOOLS = sorted(p.name.removesuffix(".setup.toml") for p in (CORPUS / "setup").iterdir())
KERNELS = os.environ.get("EBPF_HARNESS_TEST_KERNELS", "5.10,7.3")
PROBES = DATA / "predict"  # one program per fact the prediction models (tests/test_predict.py)
PROBE_FILES = ("probes.bpf.c", "unused_map.bpf.c", "kfunc.bpf.c")
# the kernel's own code symbols (modules' lines end in ']'), sorted as Python sorts them
KALLSYMS = ("grep -v ']$' /proc/kallsyms | awk '$2 ~ /^[tTwW]$/ {print $3}' "
            "| LC_ALL=C sort -u | md5sum")
SCRIPTS = DATA / "bpftrace"  # bpftrace scripts: one per stage a script can fail at, one passing
SCRIPT_FILES = ("syntax.bt", "missing_probe.bt", "kfunc_later.bt")
SUITE = ",".join([
    "observability/exec_trace",
    "observability/exec_count_bcc",
    "observability/bpf_loop_demo",
    "security/lsm_file_open",
    "networking/xdp_drop_udp",
    "security/exec_audit_bt",
])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # the guest must not read a hidden host directory, and still reads its sibling (in the
    # cache: virtme-ng gives the guest its own /tmp and /var/tmp)
    cfg = load_config()
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    secrets = Path(tempfile.mkdtemp(prefix="test-hide-", dir=cfg.cache_dir))
    for d in ("hidden", "visible"):
        (secrets / d).mkdir()
        (secrets / d / "secret").write_text("s3cret\n")
    cfg = cfg.with_overrides(hide_paths=(str(secrets / "hidden"),))
    progress = Progress()
    kernels = prepare_kernels(KERNELS, cfg, progress)
    oldest = min(kernels, key=lambda k: k.version)
    subjects = subjects_for_paths([str(DATA / "features.bpf.c"), str(DATA / "broken.bpf.c"),
                                   str(DATA / "loader_setup.bpf.c")], kernels, cfg)
    subjects += subjects_for_suite(SUITE, kernels, cfg)
    subjects += subjects_for_paths([str(PROBES / f) for f in PROBE_FILES], kernels, cfg)
    subjects += subjects_for_paths([str(SCRIPTS / f) for f in SCRIPT_FILES], kernels, cfg)
    subjects += subjects_for_paths([f"/usr/sbin/{t}" for t in TOOLS], kernels, cfg,
                                   setup=CORPUS / "setup")
    subjects.append(subject_for_command(["/usr/bin/python3", str(CORPUS / "run_tools.py"), *TOOLS],
                                        alive=None, network=False, timeout=300))
    subjects.append(subject_for_command(["/usr/sbin/opensnoop"], alive=8, network=False,
                                        timeout=120))
    subjects.append(subject_for_command(["false"], alive=None, network=False, timeout=60))
    for d in ("hidden", "visible"):
        subjects.append(subject_for_command(["cat", str(secrets / d / "secret")], alive=None,
                                            network=False, timeout=60))
    subjects.append(subject_for_command(["sh", "-c", KALLSYMS], alive=None, network=False,
                                        timeout=120))
    crash = ["sh", "-c", f'[ "$(uname -r)" = "{oldest.release}" ] && echo c > /proc/sysrq-trigger; true']
    subjects.append(subject_for_command(crash, alive=None, network=False, timeout=60))
    report = execute(kernels, subjects, cfg, progress,
                     workdir=tmp_path_factory.mktemp("vmrun"))
    print(render_matrix(report))
    shutil.rmtree(secrets, ignore_errors=True)
    return report, kernels, oldest, secrets


def status(report: Report, subject: str, kernel: str) -> str:
    cell = report.cell(subject, kernel)
    assert cell is not None, f"no result for {subject} on {kernel}"
    return cell.status


def test_kernels_booted_with_their_real_release(run):
    report, kernels, _, _ = run
    assert len(report.kernels) == len(kernels) >= 2
    for k, info in zip(kernels, report.kernels, strict=True):
        assert info.release == k.release
        assert info.accel in ("kvm", "tcg")
        assert info.boot_seconds and info.boot_seconds > 0
        assert info.features["prog_types"]["kprobe"] is True
        assert "bpf" in info.features["lsm"]  # booted with lsm=...,bpf on every kernel
        # the host root is cached in the guest (vm.shim): 'loose' on 5.x, 'cache=0xf' on 6.x
        root = info.features["root_mount"]
        assert root.startswith("9p ") and re.search(r"\bloose\b|\bcache=", root), root
        assert info.ready_seconds is not None and info.ready_seconds >= info.boot_seconds
    assert report.loaders["libbpf"].startswith("1.")


def test_verdicts_follow_when_features_entered_the_kernel(run):
    report, kernels, _oldest, _ = run
    obj = str(DATA / "features.bpf.c")
    for k in kernels:
        assert status(report, f"{obj}:ringbuf_prog", k.id) == "pass"  # 5.8
        v = report.cell(f"{obj}:ringbuf_prog", k.id).verifier
        # veristat's statistics, from the stats log and bpf_prog_info
        assert v.insns_processed and v.states is not None and v.verification_usec is not None
        assert v.stack_depth is not None and v.xlated_bytes and v.jited_bytes and v.insns
        assert status(report, f"{obj}:xdp_prog", k.id) == "pass"
        loop = report.cell(f"{obj}:loop_prog", k.id)
        if (k.version.major, k.version.minor) >= (5, 17):
            assert loop.status == "pass", loop.detail
            assert loop.verifier.insns_processed and loop.verifier.insns_processed > 0
        else:
            # what happened (the verifier refused it), and beside it why that was expected:
            # nothing declared, so the prediction read from the object is the expectation
            assert (loop.status, loop.expected, loop.expected_by) == \
                ("reject", "refusal", "prediction"), loop.detail
            assert loop.expected_reason == ("needs bpf_loop helper (5.17), callbacks (5.13) "
                                            f"(>= 5.17); this kernel is {k.version}")
            assert loop.detail.startswith("verifier:") and loop.as_expected, loop.detail
            assert loop.predicted == "5.17" and not loop.unexplained and loop.verifier.log


def test_compile_error_is_reported_per_kernel(run):
    report, kernels, _, _ = run
    for k in kernels:
        cell = report.cell(str(DATA / "broken.bpf.c"), k.id)
        assert (cell.status, cell.stage) == ("fail", "compile")
        assert "undefined_symbol" in cell.detail


def test_bundled_programs_behave(run):
    report, kernels, oldest, _ = run
    for k in kernels:
        for subject in SUITE.split(","):
            cell = report.cell(subject, k.id)
            assert cell is not None, subject
            if k is oldest and cell.status == "crash":
                pytest.fail(f"{subject} crashed on {k.id}: {cell.detail}")
            assert cell.meets_expectation, f"{subject} on {k.id}: {cell.status} {cell.detail}"
    demo = report.cell("observability/bpf_loop_demo", oldest.id)
    assert (demo.status, demo.expected, demo.expected_by) == ("reject", "refusal", "declaration")


def test_commands_alive_and_failing(run):
    report, kernels, _, _ = run
    for k in kernels:
        alive = report.cell("/usr/sbin/opensnoop", k.id)
        assert alive.status == "pass" and "still running" in alive.detail
        assert status(report, "false", k.id) == "fail"


def test_a_crash_costs_only_its_own_kernel(run):
    report, kernels, oldest, _ = run
    crash_subject = report.subjects()[-1]
    for k in kernels:
        cell = report.cell(crash_subject, k.id)
        if k is oldest:
            assert cell.status == "crash" and "Kernel panic" in cell.detail
            assert "sysrq" in cell.console
        else:
            assert cell.status == "pass"


def test_json_round_trip(run, tmp_path):
    report, _, _, _ = run
    report.write(tmp_path / "r.json")
    assert Report.read(tmp_path / "r.json").to_dict() == report.to_dict()


def test_hidden_host_paths_are_not_readable_in_the_guest(run):
    report, kernels, _, secrets = run
    for k in kernels:
        visible = report.cell(f"cat {secrets}/visible/secret", k.id)
        assert visible.status == "pass", visible.detail
        hidden = report.cell(f"cat {secrets}/hidden/secret", k.id)
        assert hidden.status == "fail" and "No such file" in hidden.output, hidden.output


def test_every_report_renders_real_results(run, tmp_path):
    report, _, _, _ = run
    from harness.report.html import render_html
    from harness.report.junit import render_junit
    from harness.report.markdown import render_markdown

    md = render_markdown(report)
    assert "| subject |" in md and "### Kernels" in md
    assert "<testsuites" in render_junit(report)
    html = render_html(report)
    assert 'id="chart-insns"' in html and 'id="matrix"' in html


def test_maps_the_loader_sizes_get_the_loaders_sizes(run):
    report, kernels, _, _ = run
    for k in kernels:
        cell = report.cell(f"{DATA / 'loader_setup.bpf.c'}:stack_of_getppid", k.id)
        assert cell is not None and cell.status == "pass", cell and cell.detail
        assert "loader set-up assumed: map 'stacks' value_size=1016" in cell.detail
        assert "map 'counts' max_entries=10240" in cell.detail


def test_corpus_object_rows_agree_with_the_real_tools(run):
    """Each tool's object row says what the tool itself does on that kernel (works, or
    not), and no program row blames the kernel for what is set-up or a manual attach."""
    report, kernels, _, _ = run
    truth_subject = f"/usr/bin/python3 {CORPUS / 'run_tools.py'} {' '.join(TOOLS)}"
    for k in kernels:
        cell = report.cell(truth_subject, k.id)
        assert cell is not None and cell.status == "pass", cell and cell.detail
        truth = dict(line.split(" ", 1) for line in cell.output.splitlines() if " " in line)
        assert set(truth) == set(TOOLS), cell.output
        for t in TOOLS:
            obj = report.cell(f"/usr/sbin/{t}", k.id)
            assert obj is not None and obj.row == "object"
            works = truth[t] == "works"
            assert (obj.status == "pass") == works, f"{t} on {k.id}: the tool {truth[t]}; " \
                f"its object row says {obj.status}: {obj.detail}"
            for r in report.results:
                if r.parent == f"/usr/sbin/{t}" and r.kernel == k.id:
                    assert r.cause not in ("needs-setup", "map-create-failed"), (r.subject, r.detail)
                    assert r.info
    newest = max(kernels, key=lambda k: k.version)
    # fentry and kprobe of the same functions: inferred alternatives, one of them in use
    vfs = report.cell("/usr/sbin/vfsstat", newest.id)
    assert vfs.status == "pass" and "alternatives inferred: entry of vfs_read" in vfs.detail
    # the set-up file gave the placeholder kprobes their target and the stack map its size
    assert "kprobe vfs_read" in report.cell("/usr/sbin/funclatency:dummy_kprobe", newest.id).detail
    assert "value_size=1016" in report.cell("/usr/sbin/offcputime:sched_switch", newest.id).detail


def test_predictions_from_each_kernels_btf_hold_in_that_kernel(run):
    """Every probe was predicted before booting from the kernel's own BTF (a CO-RE field
    a kernel dropped, a guarded read, a helper and a kfunc by version, an unused map of a
    missing type, hooks in no kernel), and each prediction held in that kernel."""
    report, kernels, _, _ = run
    cells = [r for r in report.results if r.parent in {str(PROBES / f) for f in PROBE_FILES}]
    assert len(cells) == 11 * len(kernels), [r.subject for r in cells]
    for r in cells:
        assert r.prediction is not None, (r.subject, r.kernel)
        assert r.prediction["agrees"] is True, (r.subject, r.kernel, r.prediction, r.status,
                                                 r.detail)
    newest = max(kernels, key=lambda k: k.version)
    core = report.cell(f"{PROBES / 'probes.bpf.c'}:core_field", newest.id)
    assert core.status == "reject" and core.prediction["verdict"] == "core"
    assert "inet_sock.freebind" in core.prediction["reason"]
    guarded = report.cell(f"{PROBES / 'probes.bpf.c'}:core_guarded", newest.id)
    assert guarded.status == "pass" and guarded.prediction["verdict"] == "pass"


def test_symbols_read_out_of_each_image_are_the_running_kernels(run):
    """kallsyms read on the host from the kernel's image (the prediction's list of what a
    kprobe can reach) is exactly the kernel's /proc/kallsyms of code symbols."""
    import hashlib

    from harness.build.vmlinux import kernel_symbols
    from harness.kernels.cache import Cache

    report, kernels, _, _ = run
    for k in kernels:
        path = kernel_symbols(k, Cache(load_config().cache_dir))
        assert path is not None, k.id
        names = sorted(path.read_text().split())
        assert len(names) > 40000, (k.id, len(names))
        cell = report.cell(f"sh -c {KALLSYMS}", k.id)
        assert cell is not None and cell.status == "pass", cell and cell.detail
        mine = hashlib.md5("".join(f"{n}\n" for n in names).encode()).hexdigest()
        assert cell.output.split()[0] == mine, (k.id, len(names))


def test_requirements_and_predict_without_booting(tmp_path):
    """The table's minimum and each kernel's predicted verdict side by side, and the
    pre-flight gate: exit 1 when a cell expected to work is predicted to be refused."""
    from tests.conftest import run_cli

    probes = str(PROBES / "probes.bpf.c")
    out = tmp_path / "req.json"
    p = run_cli("requirements", probes, "-k", KERNELS, "--json", str(out))
    assert p.returncode == 0, p.stderr
    import json

    progs = {x["name"]: x for x in json.loads(out.read_text())["objects"][0]["programs"]}
    newest = KERNELS.split(",")[-1]
    assert progs["core_field"]["predicted"][newest]["verdict"] == "core"
    assert progs["core_guarded"]["predicted"][newest]["verdict"] == "pass"
    assert "core_field: " in p.stdout and "CO-RE: field inet_sock.freebind" in p.stdout
    gate = run_cli("predict", probes, "-k", newest, "--json", str(tmp_path / "p.json"))
    assert gate.returncode == 1, gate.stdout  # core_field is expected to work, and cannot
    assert "PREDICTED NOT OK" in gate.stdout and "~CORE" in gate.stdout


def test_bpftrace_scripts_get_staged_verdicts(run):
    """A script that does not parse (compile), one whose probe no kernel has (attach, the
    probe named), one that sees its trigger's event (pass where bpftrace has kfunc probes,
    an expected refusal where it says it has not), and the bundled exec audit
    script seeing /bin/true run; bpftrace --info kept per kernel."""
    report, kernels, _, _ = run
    newest = max(kernels, key=lambda k: k.version)
    newest_info = report.kernel(newest.id)
    assert newest_info is not None
    assert newest_info.features["bpftrace"]["Probe types"]["kfunc"] == "yes"
    for k in kernels:
        syntax = report.cell(str(SCRIPTS / "syntax.bt"), k.id)
        assert (syntax.status, syntax.stage) == ("fail", "compile"), syntax.detail
        missing = report.cell(str(SCRIPTS / "missing_probe.bt"), k.id)
        assert (missing.status, missing.stage) == ("fail", "attach"), missing.detail
        assert "ebpf_harness_no_such_function" in missing.detail
        # predicted from the kernel's symbols before booting, and borne out
        assert missing.prediction is not None and missing.prediction["verdict"] == "attach"
        assert missing.prediction["agrees"] is True, missing.prediction
        later = report.cell(str(SCRIPTS / "kfunc_later.bt"), k.id)
        info = report.kernel(k.id)
        assert info is not None
        if info.features["bpftrace"]["Probe types"]["kfunc"] == "yes":
            assert (later.status, later.stage) == ("pass", "behavior"), later.detail
            assert "read by cat" in later.output
        else:
            # bpftrace 0.17 reports no kfunc support on 5.10: the declared requirement
            # makes the refusal the expected one, and the cell says it was refused
            assert (later.status, later.stage, later.expected) == ("fail", "attach", "refusal")
            assert "kfunc" in later.expected_reason, later.expected_reason
        audit = report.cell("security/exec_audit_bt", k.id)
        assert audit.status == "pass" and "exec /bin/true by uid 0" in audit.output, audit.detail
        assert info.features["bpftrace"]["Probe types"]["kprobe"] == "yes"
