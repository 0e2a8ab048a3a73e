"""Columns are (line, architecture, flavour): one id grammar, and each column resolved to
its own Debian build (harness/kernels/catalog.py, resolve.py). Pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError, UnknownKernelError
from harness.kernels.catalog import (
    load_catalog,
    parse_arches,
    parse_kernel_id,
    parse_kernel_ids,
    release_flavour,
    with_arches,
)
from harness.kernels.debian import abi_of, parse_packages
from harness.kernels.resolve import resolve
from tests.test_debian_index import stanza

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(REPO / "kernels")


@pytest.mark.parametrize(("kid", "canonical", "arch", "rt"), [
    ("6.12", "6.12", "amd64", False),
    ("6.12/arm64", "6.12/arm64", "arm64", False),
    ("6.12/rt", "6.12/rt", "amd64", True),
    ("6.12/arm64-rt", "6.12/arm64-rt", "arm64", True),
    # the host's architecture is the default: one spelling per column
    ("6.12/amd64", "6.12", "amd64", False),
    ("6.12/amd64-rt", "6.12/rt", "amd64", True),
])
def test_one_grammar_for_lines_architectures_and_flavours(catalog, kid, canonical, arch, rt):
    req = parse_kernel_id(kid, catalog)
    assert (req.id, req.kind, req.arch, req.rt) == (canonical, "line", arch, rt)
    assert req.flavour == ("rt-" if rt else "") + arch


@pytest.mark.parametrize(("release", "arch", "rt"), [
    ("6.12.117+deb13-amd64", "amd64", False),
    ("6.12.117+deb13-rt-amd64", "amd64", True),
    ("5.10.0-32-arm64", "arm64", False),
    ("6.1.0-50-rt-arm64", "arm64", True),
])
def test_an_exact_release_names_its_own_architecture_and_flavour(catalog, release, arch, rt):
    req = parse_kernel_id(release, catalog)
    assert (req.kind, req.release, req.arch, req.rt) == ("release", release, arch, rt)
    assert release_flavour(release) == (arch, rt)


def test_unknown_columns_say_what_exists(catalog):
    with pytest.raises(UnknownKernelError, match=r"no line 4\.19 in the catalog"):
        parse_kernel_id("4.19/arm64", catalog)
    with pytest.raises(UnknownKernelError, match=r"LINE/arm64, LINE/rt"):
        parse_kernel_id("6.12-arm64", catalog)


def test_arch_is_a_shorthand_over_lines_and_sets(catalog):
    ids = with_arches(["5.10", "6.12/rt", "7.3/arm64"], ["amd64", "arm64"], catalog)
    assert ids == ["5.10", "5.10/arm64", "6.12/rt", "6.12/arm64-rt", "7.3/arm64"]
    reqs = parse_kernel_ids(with_arches(list(catalog.sets["ci"]), ["arm64"], catalog), catalog)
    assert [r.id for r in reqs] == [f"{k}/arm64" for k in catalog.sets["ci"]]
    assert parse_arches("x86_64,aarch64,arm64") == ["amd64", "arm64"]
    with pytest.raises(ConfigError, match="unknown architecture 'riscv64'"):
        parse_arches("riscv64")


TRIXIE = "\n".join([
    stanza("linux-image-6.12.117+deb13-amd64", "6.12.117-1"),
    stanza("linux-image-6.12.117+deb13-rt-amd64", "6.12.117-1"),
    stanza("linux-image-6.12.117+deb13-cloud-amd64", "6.12.117-1"),
    stanza("linux-headers-6.12.117+deb13-rt-amd64", "6.12.117-1",
           "linux-headers-6.12.117+deb13-common-rt (= 6.12.117-1), linux-kbuild-6.12.117+deb13"),
    stanza("linux-headers-6.12.117+deb13-common-rt", "6.12.117-1"),
])
TRIXIE_ARM64 = "\n".join([
    stanza("linux-image-6.12.117+deb13-arm64", "6.12.117-1"),
    stanza("linux-image-6.12.117+deb13-rt-arm64", "6.12.117-1"),
])


def test_each_column_resolves_to_its_own_build(catalog):
    amd64 = {"trixie": parse_packages(TRIXIE, "trixie"),
             "bookworm-backports": parse_packages("", "bookworm-backports")}
    arm64 = {"trixie": parse_packages(TRIXIE_ARM64, "trixie"),
             "bookworm-backports": parse_packages("", "bookworm-backports")}
    assert resolve(parse_kernel_id("6.12", catalog), catalog, amd64).release == \
        "6.12.117+deb13-amd64"
    rt = resolve(parse_kernel_id("6.12/rt", catalog), catalog, amd64)
    assert rt.release == "6.12.117+deb13-rt-amd64"
    # the rt headers and their own -common-rt come along; kbuild (a tool) does not
    assert [p.name for p in rt.packages] == ["linux-image-6.12.117+deb13-rt-amd64",
                                              "linux-headers-6.12.117+deb13-rt-amd64",
                                              "linux-headers-6.12.117+deb13-common-rt"]
    assert abi_of(rt.release, "rt-amd64") == "6.12.117+deb13"
    assert resolve(parse_kernel_id("6.12/arm64", catalog), catalog, arm64).release == \
        "6.12.117+deb13-arm64"
    assert resolve(parse_kernel_id("6.12/arm64-rt", catalog), catalog, arm64).release == \
        "6.12.117+deb13-rt-arm64"
    with pytest.raises(UnknownKernelError, match=r"no rt-arm64 build of kernel line 6\.12"):
        resolve(parse_kernel_id("6.12/arm64-rt", catalog), catalog,
                {s: parse_packages("", s) for s in ("trixie", "bookworm-backports")})


def test_a_cell_that_differs_from_its_lines_generic_build_is_named_in_every_report():
    from harness.report.cells import differences
    from harness.report.html import render_html
    from harness.report.markdown import render_markdown
    from harness.report.terminal import render_matrix
    from harness.results import KernelInfo, Report, Result

    ks = [KernelInfo("6.12", "6.12.117+deb13-amd64", "6.12.117"),
          KernelInfo("6.12/arm64", "6.12.117+deb13-arm64", "6.12.117", arch="arm64"),
          KernelInfo("6.12/rt", "6.12.117+deb13-rt-amd64", "6.12.117", rt=True),
          KernelInfo("5.10/arm64", "5.10.0-32-arm64", "5.10.223", arch="arm64")]
    rs = [Result("o/fentry", "6.12", "pass", "attach"),
          Result("o/fentry", "6.12/arm64", "fail", "attach", "attach fentry/x: Operation not "
                 "supported (95)"),
          Result("o/fentry", "6.12/rt", "pass", "attach"),
          Result("o/fentry", "5.10/arm64", "fail", "attach", "no base column for 5.10")]
    rep = Report(kernels=ks, results=rs)
    assert [k.variant for k in ks] == ["", "arm64", "rt", "arm64"]
    (d,) = differences(rep)
    assert d == ("o/fentry: pass on 6.12, fail on 6.12/arm64 (architecture difference): "
                 "attach fentry/x: Operation not supported (95)")
    # declared: the reason it was expected goes with it
    declared = Result("o/fentry", "6.12/arm64", "fail", "attach", "Error attaching probe",
                      expected="refusal", expected_by="declaration",
                      expected_reason="needs BPF trampolines on arm64 (>= 6.4)")
    (e,) = differences(Report(kernels=ks, results=[rs[0], declared]))
    assert e == ("o/fentry: pass on 6.12, fail on 6.12/arm64 (architecture difference, "
                 "expected: needs BPF trampolines on arm64 (>= 6.4)): Error attaching probe")
    assert d in render_matrix(rep) and d in render_markdown(rep)
    assert "architecture difference" in render_html(rep)
    from harness.report.junit import render_junit

    assert 'name="difference" value="o/fentry: pass on 6.12, fail on 6.12/arm64' in \
        render_junit(rep)


def test_the_arch_option_applies_to_the_lines_asked_for_or_the_default_kernels():
    from harness.cli import kernel_ids
    from harness.config import Config

    cfg = Config(catalog=REPO / "kernels", kernels="ci")
    assert kernel_ids("5.10,6.12", "arm64", cfg) == ["5.10/arm64", "6.12/arm64"]
    assert kernel_ids(None, "amd64,arm64", cfg) == ["5.10", "5.10/arm64", "7.3", "7.3/arm64"]
    assert kernel_ids("6.12", None, cfg) == "6.12"


def test_sets_name_columns_and_a_marker_can_ask_for_an_architecture(catalog):
    from harness.plugin.selection import KernelRef, no_match_reason, select
    from harness.versions import KernelVersion

    assert [r.id for r in parse_kernel_ids("arm64", catalog)] == \
        ["5.10/arm64", "6.1/arm64", "6.12/arm64", "7.2/arm64"]
    assert [(r.id, r.arch, r.rt) for r in parse_kernel_ids("rt", catalog)] == \
        [("6.12/rt", "amd64", True), ("6.12/arm64-rt", "arm64", True)]
    ks = [KernelRef("6.12", "6.12.117+deb13-amd64", KernelVersion.parse("6.12.117")),
          KernelRef("6.12/arm64", "6.12.117+deb13-arm64", KernelVersion.parse("6.12.117")),
          KernelRef("5.10/arm64", "5.10.0-32-arm64", KernelVersion.parse("5.10.223"))]
    assert [k.id for k in select(ks, (">=6.1",), "arm64")] == ["6.12/arm64"]
    assert [k.id for k in select(ks, (), "amd64")] == ["6.12"]
    assert no_match_reason(ks, (">=7.0",), "arm64") == \
        "no kernel of 6.12, 6.12/arm64, 5.10/arm64 matches >=7.0 on arm64"
