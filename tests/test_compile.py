"""clang for .bpf.c sources: cached objects keyed by source, flags and compiler version,
written under names of their own (two runs compiling at once never share a file)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.build import compile as comp
from harness.errors import CompileError

SRC = """#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int pass_all(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def src(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "vmlinux").mkdir()
    vh = tmp_path / "vmlinux" / "vmlinux.h"
    vh.write_text("/* no types needed */\n")
    s = tmp_path / "p.bpf.c"
    s.write_text(SRC)
    return s, vh


def test_objects_are_cached_by_compiler_version(tmp_path: Path, src, monkeypatch: pytest.MonkeyPatch):
    s, vh = src
    out = comp.compile_bpf(s, tmp_path / "objs", vh)
    assert out.read_bytes()[:4] == b"\x7fELF"
    assert comp.compile_bpf(s, tmp_path / "objs", vh) == out  # cached
    monkeypatch.setattr(comp, "compiler_identity", lambda: "clang version 99")
    assert comp.compile_bpf(s, tmp_path / "objs", vh) != out  # another clang, another object


def test_concurrent_compiles_of_one_source_agree(tmp_path: Path, src):
    s, vh = src
    with ThreadPoolExecutor(4) as pool:
        outs = set(pool.map(lambda _: comp.compile_bpf(s, tmp_path / "objs", vh), range(4)))
    assert len(outs) == 1 and next(iter(outs)).read_bytes()[:4] == b"\x7fELF"
    assert not list((tmp_path / "objs").glob(".*.part"))


def test_a_source_that_does_not_compile(tmp_path: Path, src):
    s, vh = src
    s.write_text(SRC + "int broken( {\n")
    with pytest.raises(CompileError, match=r"p\.bpf\.c does not compile: .*error"):
        comp.compile_bpf(s, tmp_path / "objs", vh)
    assert not list((tmp_path / "objs").iterdir())
