"""BPF objects inside libbpf-skeleton binaries (Debian's libbpf-tools carry theirs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.build.skeleton import embedded_objects, is_bpf_object
from harness.config import Config
from harness.errors import ConfigError
from harness.session import subjects_for_paths


def test_the_object_inside_execsnoop():
    exe = shutil.which("execsnoop") or "/usr/sbin/execsnoop"
    if not Path(exe).exists():
        pytest.fail("libbpf-tools is not installed: run ./quickstart setup")
    [obj] = embedded_objects(Path(exe).read_bytes())
    assert is_bpf_object(obj) and b"tracepoint/syscalls/sys_enter_execve" in obj


def test_embedded_objects_are_found_and_cut_to_size():
    fake_bpf = bytearray(64)
    fake_bpf[:6] = b"\x7fELF\x02\x01"
    fake_bpf[18:20] = (247).to_bytes(2, "little")
    fake_bpf[0x28:0x30] = (64).to_bytes(8, "little")  # section headers right after the header
    fake_bpf[0x3A:0x3E] = (64).to_bytes(2, "little") + (1).to_bytes(2, "little")
    obj = bytes(fake_bpf) + b"S" * 64
    host = b"\x7fELF" + b"\0" * 100 + obj + b"trailing" + obj
    assert embedded_objects(host) == [obj, obj]
    assert embedded_objects(b"\x7fELF nothing here") == []


def test_check_takes_a_skeleton_binary(tmp_path: Path):
    exe = Path(shutil.which("execsnoop") or "/usr/sbin/execsnoop")
    [s] = subjects_for_paths([str(exe)], [], Config(cache_dir=tmp_path))
    stored = Path(s.task["path"])
    assert s.id == str(exe) and s.expands and stored.read_bytes()[:4] == b"\x7fELF"
    assert tmp_path in stored.parents
    with pytest.raises(ConfigError, match="no BPF object inside"):
        subjects_for_paths(["/bin/true"], [], Config(cache_dir=tmp_path))
