"""program.toml declarations: the bundled suite parses, and mistakes are one-line errors
naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.suite import discover


def test_the_bundled_suite_parses():
    decls = discover()
    assert len(decls) == 34  # 27 libbpf and BCC programs, 7 bpftrace scripts
    assert {d.domain for d in decls} == {"observability", "security", "networking"}


def _program(root: Path, toml: str) -> Path:
    d = root / "security" / "p"
    d.mkdir(parents=True)
    (d / "p.bpf.c").write_text("// empty\n")
    (d / "program.toml").write_text(toml)
    return d / "program.toml"


@pytest.mark.parametrize(("toml", "message"), [
    ('domain = "security"\nsource = "p.bpf.c"\nmin_kernal = "5.8"\n', "unknown key 'min_kernal'"),
    ('domain = "secuirty"\nsource = "p.bpf.c"\n', "domain must be one of"),
    ('domain = "security"\n', "needs 'source"),
    ('domain = "security"\nsource = "q.bpf.c"\n', "source = 'q.bpf.c', but"),
    ('domain = "security"\nsource = [\n', "not valid TOML"),
    ('domain = "security"\nsource = "p.bpf.c"\n[arch.riscv64]\nmin_kernel = "6.1"\n',
     "unknown key 'arch.riscv64'"),
    ('domain = "security"\nsource = "p.bpf.c"\n[arch.arm64]\nmin_kernel = "6.0"\n',
     r"\[arch.arm64\] needs min_kernel and feature"),
])
def test_malformed_declarations(tmp_path: Path, toml: str, message: str):
    f = _program(tmp_path, toml)
    with pytest.raises(ConfigError, match=message) as e:
        discover(tmp_path)
    assert str(f) in str(e.value)


def test_an_architecture_can_need_a_newer_kernel(tmp_path: Path):
    from harness.versions import KernelVersion

    _program(tmp_path, 'domain = "security"\nsource = "p.bpf.c"\nmin_kernel = "5.7"\n'
                       'feature = "BPF LSM programs"\n[arch.arm64]\nmin_kernel = "6.0"\n'
                       'feature = "BPF trampolines on arm64"\n')
    (d,) = discover(tmp_path)
    v510, v61 = KernelVersion.parse("5.10.223"), KernelVersion.parse("6.1.176")
    assert d.unmet(v510, None) is None  # 5.7 on x86_64
    assert d.unmet(v510, None, "arm64") == ("needs BPF trampolines on arm64 (>= 6.0); "
                                            "this kernel is 5.10.223")
    assert d.unmet(v61, None, "arm64") is None
    assert d.minimum("amd64") == (KernelVersion.parse("5.7"), "BPF LSM programs")
