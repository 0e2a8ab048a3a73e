"""lsm_file_open: mark one file by (device, inode); its open must fail with EPERM, others not."""

from __future__ import annotations

import errno
import os
import struct
import tempfile

FILE_ID = struct.Struct("<QII")  # struct file_id: ino, dev, pad
COUNT = struct.Struct("<Q")


def _kernel_dev(st_dev: int) -> int:
    """stat(2)'s st_dev encoding -> the kernel's internal dev_t (MAJOR << 20 | MINOR)."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


def _try_open(path: str) -> int:
    """0 if path opens, else the errno of the refusal."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return e.errno
    os.close(fd)
    return 0


def check(ctx) -> str | None:
    denied = ctx.obj.maps["denied"]
    mnt = tempfile.mkdtemp(prefix="lsm_file_open.")
    key = None
    # a private tmpfs: its inodes are what both stat(2) and the hook see (an overlay /tmp
    # would show the hook two inodes per file, the overlay's and the one underneath)
    r = ctx.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "lsm_file_open", mnt])
    assert r.returncode == 0, f"mount tmpfs on {mnt}: {r.stderr.decode(errors='replace').strip()}"
    try:
        marked, other = os.path.join(mnt, "marked"), os.path.join(mnt, "other")
        for path in (marked, other):
            with open(path, "w") as f:
                f.write("lsm_file_open\n")
        st = os.stat(marked)
        key = FILE_ID.pack(st.st_ino, _kernel_dev(st.st_dev), 0)
        denied.update(key, COUNT.pack(0))

        err = _try_open(marked)
        assert err == errno.EPERM, (
            f"open of the marked file {marked} (ino {st.st_ino}) gave "
            f"{errno.errorcode.get(err, err) if err else 'success'}, expected EPERM")
        err = _try_open(other)
        assert err == 0, f"open of the unmarked file {other} failed: {os.strerror(err)}"

        raw = denied.lookup(key)
        assert raw is not None, "the marked file's entry vanished from map 'denied'"
        (count,) = COUNT.unpack(raw)
        assert count == 1, f"map 'denied' counts {count} refused opens of {marked}, expected 1"

        denied.delete(key)
        key = None
        err = _try_open(marked)
        assert err == 0, f"{marked} still refused ({os.strerror(err)}) after its mark was removed"
        return (f"open of marked inode {st.st_ino} refused with EPERM (counted once); "
                "unmarked file and unmarked-again file open")
    finally:
        if key is not None:
            denied.delete(key)
        ctx.run(["umount", mnt])
        os.rmdir(mnt)
