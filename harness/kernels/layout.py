"""Kernel package layouts and kernel images. Pure functions over bytes and directory trees.

Three Debian layouts are normalised to one: ROOT/boot/vmlinuz-REL and ROOT/lib/modules/REL,
which is where virtme-ng looks for modules next to the image it is given.

- bullseye / bookworm: boot/vmlinuz-REL and lib/modules/REL
- trixie:              boot/vmlinuz-REL and usr/lib/modules/REL
- sid 7.x:             usr/lib/modules/REL/vmlinuz (linux-binary-*) and usr/lib/modules/REL
"""

from __future__ import annotations

import lzma
import os
import struct
import zlib
from pathlib import Path

from ..errors import KernelError


def find_image(root: Path, rel: str) -> Path | None:
    for cand in (
        root / "boot" / f"vmlinuz-{rel}",
        root / "usr" / "lib" / "modules" / rel / "vmlinuz",
        root / "lib" / "modules" / rel / "vmlinuz",
    ):
        if cand.is_file():
            return cand
    return None


def normalize_tree(root: Path, rel: str) -> str:
    """Make root/lib/modules/REL and root/boot/vmlinuz-REL exist; return the image path."""
    mods = root / "lib" / "modules" / rel
    usr_mods = root / "usr" / "lib" / "modules" / rel
    if not mods.exists():
        if not usr_mods.is_dir():
            raise KernelError(f"kernel {rel}: the packages hold no modules directory for {rel}")
        mods.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(usr_mods, mods.parent), mods)
    image = find_image(root, rel)
    if image is None:
        raise KernelError(f"kernel {rel}: the packages hold no kernel image (vmlinuz) for {rel}")
    boot = root / "boot" / f"vmlinuz-{rel}"
    if image != boot:
        boot.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(image, boot.parent), boot)
    # BCC (and kbuild) find headers through REL/build (arch part) and REL/source (common)
    src = root / "usr" / "src"
    links = {"build": src / f"linux-headers-{rel}"}
    commons = sorted(src.glob("linux-headers-*-common")) if src.is_dir() else []
    if commons:
        links["source"] = commons[-1]
    real_mods = mods.resolve()
    for name, target in links.items():
        if not target.is_dir():
            continue
        p = real_mods / name
        if p.is_symlink() or p.exists():
            p.unlink()
        os.symlink(os.path.relpath(target, real_mods), p)
    return str(boot.relative_to(root))


def bzimage_release(data: bytes) -> str:
    """The release string (uname -r) of an x86 bzImage, read from its setup header."""
    if len(data) < 0x210 or data[0x202:0x206] != b"HdrS":
        raise KernelError("not an x86 bzImage (no 'HdrS' setup header); give a bzImage/vmlinuz")
    (ptr,) = struct.unpack_from("<H", data, 0x20E)
    start = ptr + 0x200
    end = data.find(b"\0", start)
    text = data[start:end].decode(errors="replace")
    rel = text.split(" ", 1)[0]
    if not rel:
        raise KernelError("the bzImage carries no version string")
    return rel


_MAGICS = (
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b\x08", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def decompress_vmlinux(data: bytes, zstd_decompress=None) -> bytes:
    """The ELF vmlinux inside a bzImage (for its BTF). Tries each compressed stream found."""
    for magic, kind in _MAGICS:
        pos = data.find(magic)
        while pos != -1:
            try:
                if kind == "xz":
                    out = lzma.LZMADecompressor().decompress(data[pos:])
                elif kind == "gzip":
                    out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[pos:])
                elif zstd_decompress is not None:
                    out = zstd_decompress(data[pos:])
                else:
                    out = b""
            except (lzma.LZMAError, zlib.error, OSError):
                out = b""
            if out[:4] == b"\x7fELF":
                return out
            pos = data.find(magic, pos + 1)
    raise KernelError("no compressed ELF vmlinux found inside the kernel image")


def parse_kconfig(text: str) -> dict[str, str]:
    """A kernel .config: {'CONFIG_X': 'y'|'m'|value}; '# CONFIG_X is not set' is left out."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, _, v = line.partition("=")
            out[k] = v.strip().strip('"')
    return out


def kernel_config_file(root: Path, rel: str) -> Path | None:
    for cand in (root / "boot" / f"config-{rel}", root / "lib" / "modules" / rel / "config",
                 root / "usr" / "lib" / "modules" / rel / "config"):
        if cand.is_file():
            return cand
    return None


_BTF_MAGIC = b"\x9f\xeb\x01\x00"  # 0xeB9F, version 1, no flags (little-endian)


def raw_btf(image: bytes) -> bytes:
    """The kernel's own BTF, found in an uncompressed image (an arm64 Image carries its
    .BTF section as is): the first blob whose header is a kernel BTF header (24 bytes,
    types first, strings right after them)."""
    pos = image.find(_BTF_MAGIC)
    while pos != -1:
        if pos + 24 <= len(image):
            hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
                "<IIIII", image, pos + 4)
            end = pos + hdr_len + str_off + str_len
            if hdr_len == 24 and type_off == 0 and str_off == type_len and type_len \
                    and str_len and end <= len(image):
                return image[pos:end]
        pos = image.find(_BTF_MAGIC, pos + 1)
    raise KernelError("no BTF found in the kernel image (a kernel built without "
                      "CONFIG_DEBUG_INFO_BTF cannot give a vmlinux.h)")
