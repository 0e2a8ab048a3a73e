"""lsm_bprm_block: mark one copy of /bin/true; its exec must fail with EPERM, another copy's not."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import tempfile

FILE_ID = struct.Struct("<QII")  # struct file_id: ino, dev, pad
DENIAL = struct.Struct("<QII")  # struct denial: count, last_pid, pad


def _kernel_dev(st_dev: int) -> int:
    """stat(2)'s st_dev encoding -> the kernel's internal dev_t (MAJOR << 20 | MINOR)."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


def _exec_child(path: str) -> tuple[int, int, int]:
    """Fork a child that execs path: (its pid, errno of a refused exec or 0, wait status)."""
    r, w = os.pipe()  # close-on-exec: EOF in the parent means the exec went through
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.execv(path, [path])
        except OSError as e:
            os.write(w, str(e.errno).encode())
        finally:
            os._exit(127)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        reported = f.read()
    _, status = os.waitpid(pid, 0)
    return pid, int(reported) if reported else 0, status


def _describe(err: int, status: int) -> str:
    if err:
        return f"exec refused with {errno.errorcode.get(err, err)}"
    return f"exec went through, wait status {status:#x}"


def check(ctx) -> str | None:
    denied = ctx.obj.maps["denied"]
    mnt = tempfile.mkdtemp(prefix="lsm_bprm_block.")
    key = None
    # a private tmpfs: its inodes are what both stat(2) and the hook see (an overlay /tmp
    # would show the hook the inode underneath)
    r = ctx.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "lsm_bprm_block", mnt])
    assert r.returncode == 0, f"mount tmpfs on {mnt}: {r.stderr.decode(errors='replace').strip()}"
    try:
        marked, other = os.path.join(mnt, "marked-true"), os.path.join(mnt, "other-true")
        for path in (marked, other):
            shutil.copy2("/bin/true", path)
        st = os.stat(marked)
        key = FILE_ID.pack(st.st_ino, _kernel_dev(st.st_dev), 0)
        denied.update(key, DENIAL.pack(0, 0, 0))

        pid, err, status = _exec_child(marked)
        assert err == errno.EPERM, (
            f"exec of the marked binary {marked} (ino {st.st_ino}) by pid {pid}: "
            f"{_describe(err, status)}, expected EPERM")
        opid, oerr, ostatus = _exec_child(other)
        assert oerr == 0 and os.waitstatus_to_exitcode(ostatus) == 0, (
            f"exec of the unmarked copy {other} by pid {opid}: {_describe(oerr, ostatus)}")

        raw = denied.lookup(key)
        assert raw is not None, "the marked binary's entry vanished from map 'denied'"
        count, last_pid, _ = DENIAL.unpack(raw)
        assert count == 1, f"map 'denied' counts {count} refused execs of {marked}, expected 1"
        assert last_pid == pid, f"map 'denied' names pid {last_pid} as refused, not {pid}"

        denied.delete(key)
        key = None
        pid2, err, status = _exec_child(marked)
        assert err == 0 and os.waitstatus_to_exitcode(status) == 0, (
            f"{marked} after its mark was removed (pid {pid2}): {_describe(err, status)}")
        return (f"exec of marked inode {st.st_ino} by pid {pid} refused with EPERM (counted "
                "once, pid recorded); the unmarked copy and the unmarked-again one run")
    finally:
        if key is not None:
            denied.delete(key)
        ctx.run(["umount", mnt])
        os.rmdir(mnt)
