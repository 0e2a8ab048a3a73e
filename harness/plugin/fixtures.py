"""Fixtures for tests that run inside a kernel: kernel, bpf, bpftrace, netns, trigger."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..versions import KernelVersion


@dataclass(frozen=True)
class KernelFixture:
    """The kernel a test runs in. ``version`` compares as a version."""

    id: str
    release: str
    version: KernelVersion
    accel: str = ""
    features: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def has_prog_type(self, name: str) -> bool:
        return bool(self.features.get("prog_types", {}).get(name))

    def has_map_type(self, name: str) -> bool:
        return bool(self.features.get("map_types", {}).get(name))

    def has_helper(self, name: str, prog_type: str = "kprobe") -> bool:
        return name in self.features.get("helpers", {}).get(prog_type, [])


def _guest(request: pytest.FixtureRequest):
    gs = request.config.pluginmanager.get_plugin("ebpf-harness-guest")
    if gs is None:
        pytest.fail("this fixture works inside a kernel: run pytest with --kernels IDS "
                    "(e.g. --kernels 6.12) so that the test runs in a VM", pytrace=False)
    return gs


@pytest.fixture
def kernel(request: pytest.FixtureRequest) -> KernelFixture:
    return _guest(request).kernel_fixture()


class LoadedObject:
    """A loaded BPF object: programs[name] and maps[name], released after the test."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj
        self.programs = obj.programs
        self.maps = obj.maps

    def ringbuf(self, name: str):
        return self._obj.ringbuf(name)

    def close(self) -> None:
        self._obj.close()


class Bpf:
    """``bpf.load("x.bpf.o")`` / ``bpf.compile("x.bpf.c")`` inside the guest."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._objects: list[LoadedObject] = []

    def _path(self, p: str | os.PathLike[str]) -> Path:
        path = Path(p)
        return path if path.is_absolute() else self.base / path

    def load(self, path: str | os.PathLike[str], attach: bool = False,
             setup: str | os.PathLike[str] | None = None, **given: Any) -> LoadedObject:
        """Load every program of the object (and attach them with attach=True), set up as
        its loader would: from a set-up file (setup=, or NAME.setup.toml beside the
        object) or from keyword arguments with the file's keys: maps={"stackmap":
        {"max_entries": 1024}}, variables={"targ_pid": 42}, programs={"p": {"autoload":
        False}, "q": {"target": "vfs_read"}}."""
        from ..guest import libbpf

        full = str(self._path(path))
        plan = _setup_for(full, setup, given)
        obj = libbpf.BpfObject(full)
        lo = LoadedObject(obj)
        self._objects.append(lo)
        progs = plan.get("programs", {})
        try:
            obj.apply_setup(plan)
        except libbpf.StageError as e:
            pytest.fail(f"set-up of {path}: {e.detail}", pytrace=False)
        # statistics only: a verbose log can overflow its buffer (ENOSPC) on a program the
        # verifier accepts, which would read as a rejection
        for name, p in obj.programs.items():
            p.set_log(4, 1 << 16)
            if progs.get(name, {}).get("autoload") is False:
                libbpf.prog_set_autoload(p._ptr, False)
        obj.loader_defaults()
        try:
            obj.load()
        except libbpf.StageError as e:
            below = _below_minimum(full)
            if below:  # nothing declared: the object's own minimum is the expectation
                pytest.skip(f"{path}: {below}; the kernel refused it: {e.detail}")
            logs = _rejection_log(full)
            pytest.fail(f"kernel {os.uname().release} rejected {path}: {e.detail}\n{logs}",
                        pytrace=False)
        if attach:
            for name, p in obj.programs.items():
                pset = progs.get(name, {})
                if pset.get("autoload") is False:
                    continue
                if pset.get("target"):
                    p.attach_to(pset["target"])
                else:
                    p.attach()
        return lo

    def compile(self, source: str | os.PathLike[str], attach: bool = False) -> LoadedObject:
        """Compile against this kernel's own BTF (bpftool + clang run in the guest)."""
        src = self._path(source)
        work = Path("/tmp/ebpf-harness-build")
        work.mkdir(parents=True, exist_ok=True)
        vmlinux_h = work / "vmlinux.h"
        if not vmlinux_h.exists():
            out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux",
                                  "format", "c"], capture_output=True, check=True)
            vmlinux_h.write_bytes(out.stdout)
        from ..build.compile import compile_bpf
        from ..errors import CompileError

        try:
            # the one clang command line and cache key (source, headers, vmlinux.h, flags,
            # clang's version), for the architecture this guest runs
            obj = compile_bpf(src, work, vmlinux_h)
        except CompileError as e:
            pytest.fail(str(e), pytrace=False)
        return self.load(obj, attach=attach)

    def close(self) -> None:
        for o in self._objects:
            o.close()
        self._objects.clear()


def _setup_for(obj: str, setup: str | os.PathLike[str] | None, given: dict[str, Any]) -> dict:
    """The object's set-up resolved as `check` resolves it (harness/bpfobj): a file, the
    keyword arguments, or NAME.setup.toml beside the object; {} when there is none."""
    if not setup and not given and not (Path(obj).parent /
                                        f"{_setup_name(obj)}.setup.toml").is_file():
        return {}
    try:
        from ..bpfobj.elf import read_object
        from ..bpfobj.setup import find_setup, load_setup, parse_setup, resolve
    except ImportError as e:
        pytest.fail(f"set-up of {obj} needs pyelftools in the guest's python3: install "
                    f"python3-pyelftools on the host ({e})", pytrace=False)
    from ..errors import ConfigError

    try:
        if given:
            if setup:
                raise ConfigError(f"bpf.load({obj}): give setup= or keyword arguments, not both")
            s = parse_setup(given, f"bpf.load({Path(obj).name})")
        else:
            found = find_setup(Path(obj), Path(setup) if setup else None)
            assert found is not None
            s = load_setup(found)
        return resolve(s, read_object(Path(obj)))
    except ConfigError as e:
        pytest.fail(str(e), pytrace=False)


def _below_minimum(obj: str) -> str | None:
    """'needs bpf_loop helper (5.17) (>= 5.17); this kernel is 5.10.223' when this kernel is older
    than the object's minimum (read from it, as `requirements` does), else None."""
    try:
        from ..bpfobj.requirements import object_minimum, requirements
        from ..errors import ConfigError
    except ImportError:
        return None
    try:
        top = object_minimum({p.name: p for p in requirements(Path(obj))})
    except (ConfigError, OSError, ImportError):
        return None
    if top is None:
        return None
    here, need = KernelVersion.parse(os.uname().release), KernelVersion.parse(top.min_kernel)
    if not here.below_line(need):
        return None
    from ..decision import below_minimum

    return below_minimum(", ".join(n.describe() for n in top.because), top.min_kernel, str(here))


def _setup_name(obj: str) -> str:
    from ..bpfobj.setup import setup_name

    return setup_name(Path(obj))


@pytest.fixture
def bpf(request: pytest.FixtureRequest) -> Iterator[Bpf]:
    _guest(request)
    b = Bpf(Path(request.path).parent)
    try:
        yield b
    finally:
        b.close()


@dataclass(frozen=True)
class BpftraceRun:
    """What a bpftrace script did in this kernel: the staged verdict of `check`."""

    status: str  # pass | reject | fail | timeout | error
    stage: str  # compile | load | attach | behavior | run
    detail: str
    output: str
    unmet: str = ""  # a declared requirement bpftrace --info says this kernel lacks

    @property
    def ok(self) -> bool:
        return self.status == "pass"


class Bpftrace:
    """``bpftrace.run("x.bt", trigger=[...], expect="regex")`` inside the guest: the script
    run as `check` runs it (guest/bpftrace.py), its verdict returned."""

    def __init__(self, base: Path, binary: str | None = None) -> None:
        self.base = base
        self.binary = binary

    def run(self, script: str | os.PathLike[str], trigger: list[str] | None = None,
            expect: str = "", requires: list[str] | None = None, settle: float = 1.0,
            timeout: float = 120.0) -> BpftraceRun:
        from ..guest.bpftrace import run_bpftrace

        path = Path(script)
        path = path if path.is_absolute() else self.base / path
        task: dict[str, Any] = {"subject": str(path), "script": str(path), "settle": settle,
                                "trigger": list(trigger or []), "expect": expect,
                                "requires": list(requires or []), "cwd": str(path.parent),
                                "command_timeout": timeout}
        if self.binary:
            task["bpftrace"] = self.binary
        events: list[dict[str, Any]] = []
        run_bpftrace(task, lambda ev: events.append(dict(ev)), {"check_timeout": timeout})
        res = next(ev for ev in reversed(events) if ev.get("event") == "result")
        return BpftraceRun(str(res["status"]), str(res["stage"]), str(res["detail"]),
                           str(res.get("output", "")), str(res.get("unmet", "")))


@pytest.fixture
def bpftrace(request: pytest.FixtureRequest) -> Bpftrace:
    _guest(request)
    return Bpftrace(Path(request.path).parent)


class NetNS:
    """Network namespaces and veth pairs made with pyroute2, all removed afterwards."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{os.getpid() % 10000}x{self._n}"

    def create(self) -> str:
        from pyroute2 import netns as pnetns

        name = self._name("ehns")
        pnetns.create(name)
        self.namespaces.append(name)
        return name

    def veth_pair(self, ns: str | None = None, addr: str = "10.200.1.1/24",
                  peer_addr: str = "10.200.1.2/24") -> tuple[str, str]:
        """A veth pair, one end here and (optionally) the peer moved into ns; both up."""
        from pyroute2 import IPRoute
        from pyroute2 import NetNS as PNetNS

        a, b = self._name("eh"), self._name("ep")
        with IPRoute() as ip:
            ip.link("add", ifname=a, kind="veth", peer=b)
            self.links.append(a)
            ia = ip.link_lookup(ifname=a)[0]
            ib = ip.link_lookup(ifname=b)[0]
            addr_ip, addr_len = addr.split("/")
            ip.addr("add", index=ia, address=addr_ip, prefixlen=int(addr_len))
            ip.link("set", index=ia, state="up")
            if ns:
                ip.link("set", index=ib, net_ns_fd=ns)
        if ns:
            with PNetNS(ns) as nsip:
                ib = nsip.link_lookup(ifname=b)[0]
                p_ip, p_len = peer_addr.split("/")
                nsip.addr("add", index=ib, address=p_ip, prefixlen=int(p_len))
                nsip.link("set", index=ib, state="up")
                lo = nsip.link_lookup(ifname="lo")[0]
                nsip.link("set", index=lo, state="up")
        return a, b

    def run(self, ns: str, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                              text=True, timeout=timeout)

    def close(self) -> None:
        from pyroute2 import IPRoute
        from pyroute2 import netns as pnetns

        with IPRoute() as ip:
            for link in self.links:
                idx = ip.link_lookup(ifname=link)
                if idx:
                    ip.link("del", index=idx[0])
        for ns in self.namespaces:
            pnetns.remove(ns)
        self.links.clear()
        self.namespaces.clear()


@pytest.fixture
def netns(request: pytest.FixtureRequest) -> Iterator[NetNS]:
    _guest(request)
    n = NetNS()
    try:
        yield n
    finally:
        n.close()


class Trigger:
    """Cause the events probes look for, without boilerplate."""

    @staticmethod
    def run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    @staticmethod
    def open_file(path: str | os.PathLike[str], create: bool = True) -> int:
        """Open (and close) a file; return the errno (0 on success)."""
        try:
            flags = os.O_RDONLY | (os.O_CREAT if create else 0)
            os.close(os.open(path, flags, 0o600))
            return 0
        except OSError as e:
            return e.errno or -1

    @staticmethod
    def connect(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
        """Try a TCP connection; True when it was accepted."""
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    @staticmethod
    def listen(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(16)
        return s

    @staticmethod
    def wait_until(cond, timeout: float = 5.0, every: float = 0.05) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(every)
        return bool(cond())


@pytest.fixture
def trigger() -> Trigger:
    return Trigger()


def _rejection_log(path: str, size: int = 4 << 20, limit: int = 256 << 20) -> str:
    """The verifier's reasoning for a rejected object: loaded again with the full log,
    the buffer grown while the kernel says it is too small (ENOSPC)."""
    import errno

    from ..guest import libbpf

    while True:
        obj = libbpf.BpfObject(path)
        try:
            for p in obj.programs.values():
                p.set_log(1 | 4, size)
            try:
                obj.load()
            except libbpf.StageError as e:
                if abs(e.err) == errno.ENOSPC and size < limit:
                    size *= 4
                    continue
            return "\n".join(p.read_log()[-3000:] for p in obj.programs.values())
        finally:
            obj.close()
