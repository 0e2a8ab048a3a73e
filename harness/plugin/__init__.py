"""The pytest plugin: every test that asks for a kernel runs inside that kernel.

Inert without ``--kernels`` (or the ini option ``kernels``): markers are registered and
fixtures defined, nothing else happens. With it, the host side (host.py) parametrizes
tests by kernel, boots one VM per kernel, runs that kernel's tests there with pytest, and
replays the guest's reports as if the tests had run locally. Inside the VM the guest side
(guest.py) runs the tests and writes their reports as JSON lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from .fixtures import bpf, bpftrace, kernel, netns, trigger  # noqa: F401  (fixtures)
from .selection import KernelRef, min_kernel_decision, no_match_reason, select

KERNEL_KEY = pytest.StashKey[list[KernelRef]]()
PARAM = "kernel"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("ebpf-harness", "run tests inside real kernels")
    g.addoption("--kernels", dest="ebpf_kernels", default=None,
                help="run kernel tests inside these kernels: ids (5.10,6.12), sets "
                     "(default, all) or paths; without it the plugin is inert")
    g.addoption("--ebpf-json", dest="ebpf_json", default=None,
                help="write the ebpf-harness results model (one result per test and kernel)")
    g.addoption("--ebpf-md", dest="ebpf_md", default=None,
                help="write the Markdown report of the kernel tests (e.g. $GITHUB_STEP_SUMMARY)")
    g.addoption("--ebpf-html", dest="ebpf_html", default=None,
                help="write the HTML report of the kernel tests")
    g.addoption("--ebpf-baseline", dest="ebpf_baseline", default=None,
                help="compare the kernel tests with these results (a results JSON): the run "
                     "fails when a cell got worse")
    g.addoption("--ebpf-max-insns-growth", dest="ebpf_max_insns_growth", default=None, type=float,
                help="with --ebpf-baseline: also fail on verifier instruction growth above PCT%%")
    g.addoption("--ebpf-accel", dest="ebpf_accel", default=None, choices=["auto", "kvm", "tcg"],
                help="VM acceleration (default: auto)")
    g.addoption("--ebpf-lock", dest="ebpf_lock", default=None, metavar="FILE",
                help="use exactly the kernel builds this lock file pins (ebpf-harness kernels "
                     "lock); without --kernels, all of them. Default: kernels.lock beside "
                     "pyproject.toml, if present")
    g.addoption("--ebpf-guest", dest="ebpf_guest", default=None, help=argparse.SUPPRESS)
    # "local" runs the would-be guest side on this machine: for the plugin's own tests
    g.addoption("--ebpf-backend", dest="ebpf_backend", default="vng", choices=["vng", "local"],
                help=argparse.SUPPRESS)
    parser.addini("kernels", "default for --kernels", default=None)


def _kernel_ids(config: pytest.Config) -> str | None:
    return config.getoption("ebpf_kernels") or config.getini("kernels") or None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kernels(*ranges, arch=None): run only on kernels matching every range, "
                   "e.g. '>=6.1', and with arch='arm64' only on arm64 columns")
    config.addinivalue_line(
        "markers", "min_kernel(version, feature=None): skip below this kernel version, naming "
                   "the feature; at or above it a failure is a failure")
    guest = config.getoption("ebpf_guest")
    if guest:
        from .guest import GuestSide

        data = json.loads(Path(guest).read_text())
        gs = GuestSide(config, data)
        config.stash[KERNEL_KEY] = [gs.ref]
        config.pluginmanager.register(gs, "ebpf-harness-guest")
        return
    ids = _kernel_ids(config)
    if not ids and not config.getoption("ebpf_lock"):
        return
    from .host import HostSide

    # keep each kernel's tests on one xdist worker (one VM boot per kernel)
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"
    if hasattr(config, "workerinput"):
        # workers re-parse '-n N' as plain 'load'; they must add the group suffixes too
        config.option.loadgroup = True
    hs = HostSide(config, ids)
    config.stash[KERNEL_KEY] = hs.refs
    config.pluginmanager.register(hs, "ebpf-harness-host")


def _active_kernels(config: pytest.Config) -> list[KernelRef] | None:
    return config.stash.get(KERNEL_KEY, None)


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    kernels = _active_kernels(metafunc.config)
    marker = metafunc.definition.get_closest_marker("kernels")
    if kernels is None or (PARAM not in metafunc.fixturenames and marker is None):
        return
    if PARAM not in metafunc.fixturenames:
        metafunc.fixturenames.append(PARAM)
    arch = marker.kwargs.get("arch") if marker is not None else None
    chosen = kernels if marker is None else select(kernels, tuple(marker.args), arch)
    if not chosen:  # one skipped case that says why, not pytest's "empty parameter set"
        reason = no_match_reason(kernels, tuple(marker.args) if marker else (), arch)
        metafunc.parametrize(PARAM, [pytest.param(None, marks=pytest.mark.skip(reason=reason))],
                             ids=["no-kernel"], indirect=True)
        return
    # last, so that the test id ends with the kernel id: test_x[a-6.12]
    metafunc.parametrize(PARAM, [k.id for k in chosen], ids=[k.id for k in chosen],
                         indirect=True)


def kernel_id_of(item: pytest.Item) -> str | None:
    cs = getattr(item, "callspec", None)
    if cs is None:
        return None
    v = cs.params.get(PARAM)
    return v if isinstance(v, str) else None


def guest_nodeid(item: pytest.Item) -> str:
    """The node id without xdist's '@group' suffix (loadgroup adds it on workers)."""
    return item.nodeid.split("@kernel-", 1)[0]


@pytest.hookimpl(tryfirst=True)  # before xdist turns xdist_group markers into '@' suffixes
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kernels = _active_kernels(config)
    if kernels is None:
        return
    by_id = {k.id: k for k in kernels}
    for item in items:
        kid = kernel_id_of(item)
        if kid is None or kid not in by_id:
            continue
        # carried by every report of the item, so the results model knows the kernel
        item.user_properties.append(("ebpf_kernel", kid))
        m = item.get_closest_marker("min_kernel")
        if m is not None and m.args:
            d = min_kernel_decision(by_id[kid], str(m.args[0]), m.kwargs.get("feature"))
            if d.skip:
                item.add_marker(pytest.mark.skip(reason=d.reason))
        # xdist's loadgroup scheduling keeps a group on one worker: one VM boot per kernel
        # (without xdist the marker is unknown: a warning, an error under --strict-markers)
        if config.pluginmanager.hasplugin("xdist"):
            item.add_marker(pytest.mark.xdist_group(f"kernel-{kid}"))
