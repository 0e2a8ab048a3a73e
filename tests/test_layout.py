import gzip
import lzma
import os
import struct

import pytest

from harness.errors import KernelError
from harness.kernels.layout import bzimage_release, decompress_vmlinux, normalize_tree

REL = "7.2.13+deb14-amd64"


def test_bookworm_layout(tmp_path):
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / f"vmlinuz-{REL}").write_bytes(b"img")
    (tmp_path / "lib" / "modules" / REL).mkdir(parents=True)
    assert normalize_tree(tmp_path, REL) == f"boot/vmlinuz-{REL}"


def test_trixie_layout_links_modules(tmp_path):
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / f"vmlinuz-{REL}").write_bytes(b"img")
    (tmp_path / "usr" / "lib" / "modules" / REL).mkdir(parents=True)
    normalize_tree(tmp_path, REL)
    link = tmp_path / "lib" / "modules" / REL
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == (tmp_path / "usr" / "lib" / "modules" / REL).resolve()


def test_sid_layout_image_inside_modules_and_header_links(tmp_path):
    mods = tmp_path / "usr" / "lib" / "modules" / REL
    mods.mkdir(parents=True)
    (mods / "vmlinuz").write_bytes(b"img")
    (tmp_path / "usr" / "src" / f"linux-headers-{REL}").mkdir(parents=True)
    (tmp_path / "usr" / "src" / "linux-headers-7.2.13+deb14-common").mkdir(parents=True)
    assert normalize_tree(tmp_path, REL) == f"boot/vmlinuz-{REL}"
    assert (tmp_path / "boot" / f"vmlinuz-{REL}").read_bytes() == b"img"
    assert (mods / "build").resolve().name == f"linux-headers-{REL}"
    assert (mods / "source").resolve().name == "linux-headers-7.2.13+deb14-common"


def test_missing_image_is_a_clear_error(tmp_path):
    (tmp_path / "lib" / "modules" / REL).mkdir(parents=True)
    with pytest.raises(KernelError, match="no kernel image"):
        normalize_tree(tmp_path, REL)


def _bzimage(version: str) -> bytes:
    data = bytearray(0x1000)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x400)
    s = (version + " (builder@host) #1 SMP").encode() + b"\0"
    data[0x600 : 0x600 + len(s)] = s
    return bytes(data)


def test_bzimage_release_from_setup_header():
    assert bzimage_release(_bzimage("6.13.0-rc1+")) == "6.13.0-rc1+"
    with pytest.raises(KernelError, match="bzImage"):
        bzimage_release(b"\0" * 0x400)


@pytest.mark.parametrize("codec", ["xz", "gzip"])
def test_vmlinux_found_inside_compressed_image(codec):
    elf = b"\x7fELF" + b"btf" * 100
    blob = lzma.compress(elf) if codec == "xz" else gzip.compress(elf)
    image = b"setup" * 50 + blob + b"trailer"
    assert decompress_vmlinux(image) == elf
    with pytest.raises(KernelError):
        decompress_vmlinux(b"no payload here")


def test_the_btf_inside_an_uncompressed_image_is_found():
    """An arm64 Image carries its .BTF as is: the blob whose header is a kernel BTF
    header, not an earlier stray magic."""
    from harness.kernels.layout import raw_btf

    types, strings = b"T" * 40, b"\0name\0"
    blob = b"\x9f\xeb\x01\x00" + struct.pack("<IIIII", 24, 0, len(types), len(types),
                                             len(strings)) + types + strings
    stray = b"\x9f\xeb\x01\x00" + struct.pack("<IIIII", 99, 1, 2, 3, 4)
    image = b"ARMd" + b"\0" * 100 + stray + b"\0" * 7 + blob + b"\xff" * 50
    assert raw_btf(image) == blob
    with pytest.raises(KernelError, match="no BTF found"):
        raw_btf(image[:120])


def test_clang_targets_the_kernels_architecture(tmp_path):
    from harness.build.compile import clang_argv

    arm = clang_argv(tmp_path / "p.bpf.c", tmp_path / "p.o", [tmp_path], "arm64")
    assert "-D__TARGET_ARCH_arm64" in arm and "-target" in arm
    assert "-D__TARGET_ARCH_x86" in clang_argv(tmp_path / "p.bpf.c", tmp_path / "p.o", [], "amd64")
