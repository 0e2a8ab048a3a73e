"""BPF objects embedded in a program: a libbpf skeleton compiles the .bpf.o into its
binary as bytes, so a built tool carries the exact object it loads. Pure.

`check /usr/sbin/execsnoop` checks that object, which is how a user checks what they ship
(and how the harness tests itself on Debian's libbpf-tools).
"""

from __future__ import annotations

import struct

EM_BPF = 247
_ELF = b"\x7fELF"


def is_bpf_object(data: bytes) -> bool:
    return len(data) > 20 and data[:4] == _ELF and struct.unpack_from("<H", data, 18)[0] == EM_BPF


def embedded_objects(data: bytes) -> list[bytes]:
    """Every little-endian 64-bit BPF ELF object inside data (not data's own header)."""
    out = []
    i = 1
    while (i := data.find(_ELF, i)) >= 0:
        head = data[i : i + 64]
        if len(head) == 64 and head[4] == 2 and head[5] == 1 and \
                struct.unpack_from("<H", head, 18)[0] == EM_BPF:
            shoff = struct.unpack_from("<Q", head, 0x28)[0]
            shentsize, shnum = struct.unpack_from("<HH", head, 0x3A)
            end = shoff + shentsize * shnum
            if 64 <= end <= len(data) - i:
                out.append(data[i : i + end])
                i += end
                continue
        i += 4
    return out
