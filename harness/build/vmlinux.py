"""A kernel's BTF and kallsyms taken out of its image, and vmlinux.h for CO-RE programs
generated from that BTF."""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable
from pathlib import Path

from .. import tools
from ..errors import KernelError, ToolError
from ..kernels.cache import Cache
from ..kernels.layout import decompress_vmlinux, raw_btf
from ..kernels.model import KernelSpec


def _zstd(data: bytes) -> bytes:
    # zstd complains about the bytes after the frame but still writes the frame out
    return tools.run(["zstd", "-dcq"], input=data, check=False, timeout=120).stdout


def _btf_section(elf: bytes) -> bytes:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        sec = ELFFile(io.BytesIO(elf)).get_section_by_name(".BTF")
    except ELFError as e:
        raise KernelError(f"the kernel's vmlinux is not a readable ELF: {e}") from e
    if sec is None:
        raise KernelError("no BTF in the kernel (built without CONFIG_DEBUG_INFO_BTF)")
    return bytes(sec.data())


def _kernel_image(kernel: KernelSpec) -> bytes:
    """The kernel itself: an x86 bzImage compresses an ELF vmlinux; an arm64 Image is the
    kernel as is."""
    image = kernel.vmlinuz.read_bytes()
    return decompress_vmlinux(image, zstd_decompress=_zstd) if kernel.arch == "amd64" \
        else image


Image = Callable[[], bytes]  # the kernel itself, read when first needed (_kernel_image)


def take_out(kernel: KernelSpec, cache: Cache) -> None:
    """The kernel's BTF and kallsyms taken out of its image once per release (when it is
    prepared), the image decompressed at most once for both. What an image lacks is left
    out: its cells are then predicted without it."""
    image = functools.cache(functools.partial(_kernel_image, kernel))
    with contextlib.suppress(KernelError, OSError):
        kernel_btf(kernel, cache, image)
    with contextlib.suppress(KernelError, OSError):
        kernel_symbols(kernel, cache, image)


def kernel_btf(kernel: KernelSpec, cache: Cache, image: Image | None = None) -> Path:
    """CACHE/vmlinux/REL/vmlinux.btf: the kernel's own BTF as a raw blob, taken out of
    its image once per release. Raises KernelError when the image has none."""
    dest = cache.path("vmlinux", kernel.release, "vmlinux.btf")
    if dest.exists():
        return dest
    with cache.lock(f"vmlinux-{kernel.release}"):
        if dest.exists():
            return dest
        blob = (image or functools.partial(_kernel_image, kernel))()
        btf = _btf_section(blob) if kernel.arch == "amd64" else raw_btf(blob)
        cache.write_atomic(dest, btf)
    return dest


def kernel_symbols(kernel: KernelSpec, cache: Cache, image: Image | None = None) -> Path | None:
    """CACHE/vmlinux/REL/kallsyms.txt: the names of the kernel's code symbols, read out of
    its image's kallsyms tables once per release (kernels/kallsyms.py), one a line. None
    when the image has none this reader can follow (kallsyms.none says why)."""
    from ..kernels.kallsyms import KallsymsError, text_symbols

    dest = cache.path("vmlinux", kernel.release, "kallsyms.txt")
    failed = dest.with_suffix(".none")
    if dest.exists():
        return dest
    if failed.exists():
        return None
    with cache.lock(f"kallsyms-{kernel.release}"):
        if dest.exists():
            return dest
        try:
            names = text_symbols((image or functools.partial(_kernel_image, kernel))())
        except KallsymsError as e:
            cache.write_atomic(failed, f"{e}\n".encode())
            return None
        cache.write_atomic(dest, "".join(f"{n}\n" for n in sorted(names)).encode())
    return dest


def vmlinux_header(kernel: KernelSpec, cache: Cache) -> Path:
    """CACHE/vmlinux/REL/vmlinux.h, made once per kernel release."""
    dest = cache.path("vmlinux", kernel.release, "vmlinux.h")
    if dest.exists():
        return dest
    btf = kernel_btf(kernel, cache)
    with cache.lock(f"vmlinux-{kernel.release}"):
        if dest.exists():
            return dest
        proc = tools.run(["bpftool", "btf", "dump", "file", str(btf), "format", "c"],
                         timeout=300)
        if b"struct task_struct" not in proc.stdout:
            raise ToolError(f"kernel {kernel.id}: its BTF gave no usable vmlinux.h")
        cache.write_atomic(dest, proc.stdout)
    return dest
