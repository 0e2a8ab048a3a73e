"""string_kfuncs: open paths with and without a unique substring; bpf_strstr must find exactly it."""

from __future__ import annotations

import errno
import os
import struct
import tempfile

CONFIG = struct.Struct("<I32s")  # struct match_config: pid, needle
RESULT = struct.Struct("<QiiQ")  # struct match_result: opens, index, length, matches
U32 = struct.Struct("<I")


def _open_and_read(ctx, path: str) -> tuple[int, int, int, int]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)  # one openat(2)
    os.close(fd)
    raw = ctx.obj.maps["result"].lookup(U32.pack(0))
    assert raw is not None, "the result map has no entry 0"
    return RESULT.unpack_from(raw)


def check(ctx) -> str | None:
    pid = os.getpid()
    needle = f"needle-{pid}"
    cfg, result = ctx.obj.maps["search_cfg"], ctx.obj.maps["result"]
    result.update(U32.pack(0), bytes(RESULT.size))
    with tempfile.TemporaryDirectory(prefix="string_kfuncs.") as d:
        paths = [os.path.join(d, f"a-{needle}-z"),  # match, early
                 os.path.join(d, "no-match-here"),
                 os.path.join(d, f"longer-prefix-before-the-{needle}")]  # match, later
        cfg.update(U32.pack(0), CONFIG.pack(pid, needle.encode()))
        try:
            seen = [_open_and_read(ctx, p) for p in paths]
        finally:
            cfg.update(U32.pack(0), CONFIG.pack(0, b""))

    matches_so_far = 0
    for n, (path, (opens, index, length, matches)) in enumerate(zip(paths, seen, strict=True), 1):
        want_index = path.find(needle)
        if want_index < 0:
            want_index = -errno.ENOENT
        else:
            matches_so_far += 1
        assert opens == n, f"after {n} opens the program saw {opens}"
        assert index == want_index, f"bpf_strstr({path!r}, {needle!r}) = {index}, expected {want_index}"
        assert length == len(path.encode()), f"bpf_strlen({path!r}) = {length}, expected {len(path)}"
        assert matches == matches_so_far, f"{matches} matches counted, expected {matches_so_far}"
    return (f"pid {pid}: {len(paths)} openat paths searched in the kernel, "
            f"{matches_so_far} contain {needle!r} at the offsets bpf_strstr reported")
