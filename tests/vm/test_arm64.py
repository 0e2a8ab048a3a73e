"""An arm64 Debian kernel booted on this host (TCG unless the host is arm64 with KVM), on
the cached arm64 guest root (harness.vm.guestroot), the guest agent running a command
and an object compiled for arm64 against that kernel's own BTF.

The kernel is fetched the simple way for now, with apt-get and an arm64 sources list in a
temporary directory (the mirror from the configuration, the index verified by apt against
the Debian archive keyring): the kernel fetch code (harness.kernels) replaces this once it
takes arm64 ids such as 6.1/arm64. One VM boot, about 15-20 s of guest time under TCG; the
root is built once per cache (about 2.5 min) and reused.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness.config import Config, load_config
from harness.kernels.mirror import resolve_mirrors
from harness.kernels.model import KernelSpec
from harness.orchestrator import Subject, run_one
from harness.versions import KernelVersion
from harness.vm.accel import choose_accel
from harness.vm.backend import VngBackend

pytestmark = pytest.mark.vm

DATA = Path(__file__).resolve().parent.parent / "data"
LINE = "6.1"  # bookworm's, newest build of bookworm and bookworm-security
BTF_HEADER = b"\x9f\xeb\x01\x00\x18\x00\x00\x00"  # magic 0xeB9F, version 1, flags, hdr_len 24


def _apt(conf: Path, *args: str) -> str:
    proc = subprocess.run(["apt-get", *args], env={"APT_CONFIG": str(conf), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=True, cwd=conf.parent)
    return proc.stdout


def fetch_arm64_kernel(cfg: Config) -> tuple[str, Path]:
    """(release, extracted tree) of the newest 6.1 arm64 image package,
    cached under the harness cache (test-kernels/arm64/REL)."""
    mirror, security = resolve_mirrors(cfg)
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        for sub in ("state/lists/partial", "cache/archives/partial"):
            (d / sub).mkdir(parents=True)
        (d / "state/status").write_text("")
        opts = f"[arch=arm64 signed-by={cfg.keyring}]"
        lines = [f"deb {opts} {mirror} bookworm main"]
        if security:
            lines.append(f"deb {opts} {security} bookworm-security main")
        (d / "sources.list").write_text("\n".join(lines) + "\n")
        conf = d / "apt.conf"
        conf.write_text("".join(f'{k} "{v}";\n' for k, v in {
            "APT::Architecture": "arm64", "APT::Architectures": "arm64",
            "Dir::Etc::SourceList": d / "sources.list", "Dir::Etc::SourceParts": "/dev/null",
            "Dir::State": d / "state", "Dir::State::status": d / "state/status",
            "Dir::Cache": d / "cache", "APT::Sandbox::User": "root"}.items()))
        _apt(conf, "update", "-q")
        names = subprocess.run(
            ["apt-cache", "search", "--names-only", rf"^linux-image-{LINE}\.0-[0-9]+-arm64$"],
            env={"APT_CONFIG": str(conf), "PATH": "/usr/bin:/bin"}, capture_output=True,
            text=True, check=True).stdout.split("\n")
        pkgs = [n.split()[0] for n in names if n.strip()]
        pkg = max(pkgs, key=lambda n: int(n.split("-")[3]))
        release = pkg.removeprefix("linux-image-")
        tree = cfg.cache_dir / "test-kernels" / "arm64" / release
        if not (tree / "boot" / f"vmlinuz-{release}").exists():
            _apt(conf, "download", "-q", pkg)
            deb = next(d.glob(f"{pkg}_*.deb"))
            tree.parent.mkdir(parents=True, exist_ok=True)
            part = Path(tempfile.mkdtemp(dir=tree.parent, prefix=f".{release}.", suffix=".part"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(part)], check=True)
            part.rename(tree)
        return release, tree


def arm64_vmlinux_h(image: Path, out: Path) -> Path:
    """vmlinux.h from the BTF inside an uncompressed arm64 Image (no ELF around it: the
    .BTF section is found by its header and cut out whole)."""
    data = image.read_bytes()
    found = []
    at = data.find(BTF_HEADER)
    while at >= 0:
        hdr_len, _t_off, _t_len, str_off, str_len = struct.unpack_from("<5I", data, at + 4)
        found.append((hdr_len + str_off + str_len, at))
        at = data.find(BTF_HEADER, at + 1)
    size, at = max(found)
    raw = out / "vmlinux.btf"
    raw.write_bytes(data[at:at + size])
    header = out / "vmlinux.h"
    with open(header, "wb") as fh:
        subprocess.run(["bpftool", "btf", "dump", "file", str(raw), "format", "c"], stdout=fh,
                       check=True)
    return header


def test_arm64_kernel_runs_a_check_on_its_own_root(tmp_path):
    cfg = load_config()
    release, tree = fetch_arm64_kernel(cfg)
    image = tree / "boot" / f"vmlinuz-{release}"
    arm64_vmlinux_h(image, tmp_path)
    obj = tmp_path / "getpid_events.bpf.o"
    subprocess.run(["clang", "-target", "bpf", "-D__TARGET_ARCH_arm64", "-g", "-O2",
                    f"-I{tmp_path}", "-c", str(DATA / "getpid_events.bpf.c"), "-o", str(obj)],
                   check=True)
    kernel = KernelSpec(id=f"{LINE}/arm64", release=release,
                        version=KernelVersion.parse(release.split("-")[0]), vmlinuz=image,
                        root=tree, origin="debian:bookworm (test fetch)", arch="arm64")
    subjects = [Subject("uname", {"kind": "command", "argv": ["uname", "-rm"], "cwd": "/"}),
                Subject("getpid", {"kind": "object", "path": str(obj)}, expands=True)]
    # KVM only for an arm64 host's own kernels: run_one takes TCG here on x86_64
    run = run_one(kernel, subjects, cfg, VngBackend(), tmp_path / "work", lambda ev: None,
                  choose_accel(cfg.accel))
    cells = {r.subject: r for r in run.results}
    assert run.info.boot_seconds, run.console_path
    assert not run.info.notes, run.info.notes  # e.g. "guest reports release ..." when not
    uname = cells["uname"]
    assert uname.status == "pass", uname.detail
    assert uname.output.split() == [release, "aarch64"] and release.endswith("-arm64")
    assert cells["getpid:on_getpid"].status == "pass", cells["getpid:on_getpid"].detail
    assert cells["getpid"].status == "pass"  # the object row
    print(f"{release}: boot {run.info.boot_seconds} s, VM {run.info.vm_seconds} s "
          f"({run.info.accel})")
