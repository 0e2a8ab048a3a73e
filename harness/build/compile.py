"""clang for .bpf.c files: -target bpf -g -O2, CO-RE, against a generated vmlinux.h."""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
from functools import cache
from pathlib import Path

from .. import tools
from ..errors import CompileError, ToolError

# libbpf's bpf_tracing.h names architectures its own way: Debian's -> __TARGET_ARCH_*
TARGET_ARCH = {"amd64": "x86", "arm64": "arm64"}
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), "amd64")
# <asm/types.h> and friends for the BPF target: the host's copy serves every target
MULTIARCH = f"/usr/include/{platform.machine()}-linux-gnu"


def clang_argv(src: Path, out: Path, include_dirs: list[Path], arch: str = HOST_ARCH) -> list[str]:
    """clang for a BPF object of a kernel of Debian architecture arch (amd64, arm64)."""
    argv = ["clang", "-target", "bpf", "-g", "-O2", f"-D__TARGET_ARCH_{TARGET_ARCH[arch]}",
            "-Wall", "-Wno-unused-function", "-Wno-compare-distinct-pointer-types"]
    for d in include_dirs:
        argv += ["-I", str(d)]
    argv += ["-idirafter", MULTIARCH, "-c", str(src), "-o", str(out)]
    return argv


@cache
def compiler_identity() -> str:
    """clang's own version line, part of every object's cache key."""
    return tools.tool_version(["clang", "--version"]) or "clang (version unknown)"


def first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        if " error: " in line or line.startswith("error:") or ": fatal error:" in line:
            return line.strip()
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "clang failed"


def compile_bpf(src: Path, outdir: Path, vmlinux_h: Path, arch: str = HOST_ARCH) -> Path:
    """Compile src for kernels of Debian architecture arch; the object is cached by the
    hash of source, headers, vmlinux.h, flags (the architecture among them) and clang."""
    src = src.resolve()
    incs = [vmlinux_h.parent, src.parent]
    h = hashlib.sha256()
    for f in [src, vmlinux_h, *sorted(src.parent.glob("*.h"))]:
        h.update(f.read_bytes())
    h.update(" ".join(clang_argv(src, Path("x"), incs, arch)).encode())
    h.update(compiler_identity().encode())  # a new clang makes new objects
    out = outdir / f"{src.name.removesuffix('.c')}-{h.hexdigest()[:12]}.o"
    if out.exists():
        return out
    outdir.mkdir(parents=True, exist_ok=True)
    # a name of this process's own: two runs compiling the same source never share it
    fd, name = tempfile.mkstemp(dir=outdir, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            proc = tools.run(clang_argv(src, tmp, incs, arch), check=False, timeout=300)
        except ToolError as e:
            raise CompileError(f"{src}: {e}") from e
        if proc.returncode != 0:
            stderr = proc.stderr.decode(errors="replace")
            raise CompileError(f"{src.name} does not compile: {first_error(stderr)}\n"
                               f"{stderr[-3000:]}")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
