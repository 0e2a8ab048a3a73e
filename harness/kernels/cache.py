"""The on-disk cache: atomic entries and a file lock so parallel runs cannot corrupt it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..fsio import write_atomic

_ACTIVE: dict[Path, int] = {}  # cache roots this process holds 'active', fd kept open
_HELD_RUNS: list[int] = []  # lock fds of this process's run directories, held until exit
COMPLETE_TREES = ("kernels", "guest-roots")  # directories whose entries are whole trees
RUNS_KEPT = 10  # run directories kept for a look after the run (consoles, events)


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive lock shared by every harness process on this machine."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        safe = name.replace("/", "_")
        with open(locks / f"{safe}.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _lockfile(self, name: str) -> int:
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        return os.open(locks / f"{name.replace('/', '_')}.lock", os.O_RDONLY | os.O_CREAT, 0o644)

    @contextlib.contextmanager
    def shared(self, name: str) -> Iterator[None]:
        """A shared lock for the block: 'in use', so that prune leaves the thing alone."""
        fd = self._lockfile(name)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def unused(self, name: str) -> Iterator[bool]:
        """Exclusive for the block when nobody holds `name` shared: yields False (and
        waits for nothing) when something is using it."""
        fd = self._lockfile(name)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def hold_active(self) -> None:
        """Mark this process as using the cache until it exits (its downloads and
        extractions in progress are then not leftovers to prune)."""
        if self.root in _ACTIVE:
            return
        fd = self._lockfile("active")
        fcntl.flock(fd, fcntl.LOCK_SH)
        _ACTIVE[self.root] = fd

    def new_run_dir(self, keep: int = RUNS_KEPT) -> Path:
        """A fresh run directory under runs/, held (a shared lock) until this process
        exits; the oldest beyond `keep` are removed, unless another run still holds them."""
        base = self.root / "runs"
        base.mkdir(parents=True, exist_ok=True)
        runs = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in runs[: max(0, len(runs) - keep + 1)]:
            if not _run_in_use(old):
                shutil.rmtree(old, ignore_errors=True)
        d = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=base))
        fd = os.open(d / ".lock", os.O_RDONLY | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)
        _HELD_RUNS.append(fd)
        return d

    def write_atomic(self, dest: Path, data: bytes) -> None:
        write_atomic(dest, data)

    @contextlib.contextmanager
    def staging_dir(self, dest: Path) -> Iterator[Path]:
        """A temporary directory renamed to dest only if the block completes."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
        try:
            yield tmp
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def remove_partials(self) -> int:
        """Leftovers of interrupted runs (.part files and directories)."""
        n = 0
        if not self.root.exists():
            return 0
        for top, dirs, files in os.walk(self.root):
            here = Path(top)
            for name in [d for d in dirs if d.endswith(".part")]:
                shutil.rmtree(here / name, ignore_errors=True)
                n += 1
            # finished trees (a kernel, a 500 MB guest root) hold no leftovers of ours:
            # not walked
            dirs[:] = [d for d in dirs if not d.endswith(".part")
                       and here.name not in COMPLETE_TREES]
            for name in files:
                if name.endswith(".part"):
                    (here / name).unlink(missing_ok=True)
                    n += 1
        return n


def _run_in_use(d: Path) -> bool:
    """True when another live process holds this run directory's lock."""
    lock = d / ".lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
