"""vmlinux.h for CO-RE programs, generated from the BTF inside a fetched kernel image."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .. import tools
from ..errors import ToolError
from ..kernels.cache import Cache
from ..kernels.layout import decompress_vmlinux, raw_btf
from ..kernels.model import KernelSpec


def _zstd(data: bytes) -> bytes:
    # zstd complains about the bytes after the frame but still writes the frame out
    return tools.run(["zstd", "-dcq"], input=data, check=False, timeout=120).stdout


def vmlinux_header(kernel: KernelSpec, cache: Cache) -> Path:
    """CACHE/vmlinux/REL/vmlinux.h, made once per kernel release."""
    dest = cache.path("vmlinux", kernel.release, "vmlinux.h")
    if dest.exists():
        return dest
    with cache.lock(f"vmlinux-{kernel.release}"):
        if dest.exists():
            return dest
        image = kernel.vmlinuz.read_bytes()
        # an x86 bzImage compresses an ELF vmlinux; an arm64 Image is the kernel as is,
        # its BTF inside (bpftool reads a raw BTF blob as well as an ELF)
        btf = decompress_vmlinux(image, zstd_decompress=_zstd) if kernel.arch == "amd64" \
            else raw_btf(image)
        with tempfile.NamedTemporaryFile(suffix=".btf") as tmp:
            tmp.write(btf)
            tmp.flush()
            proc = tools.run(["bpftool", "btf", "dump", "file", tmp.name, "format", "c"],
                             timeout=300)
        if b"struct task_struct" not in proc.stdout:
            raise ToolError(f"kernel {kernel.id}: its BTF gave no usable vmlinux.h")
        cache.write_atomic(dest, proc.stdout)
    return dest
