"""HTTP (and file://) downloads with limits: whole or not at all, at most the size the
signed index gives, within a deadline, retried once, stopped by CANCEL. I/O.

Nothing here knows what is downloaded; index.py says which bytes to expect.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import MirrorError, VerificationError
from .mirror import HOW_TO_SET

OnChunk = Callable[[int, int], None]  # (done bytes, total bytes; 0 when unknown)

CANCEL = threading.Event()  # set on Ctrl-C: downloads under way stop at their next chunk
UNSIGNED_CAP = 16 << 20  # an InRelease is well under a megabyte
RETRY_PAUSE = 2.0  # seconds before the one retry of a failed download


def download_deadline(size: int) -> float:
    """Seconds one download may take: two minutes, plus 1 MB/s for the bytes."""
    return 120.0 + size / 1e6


class Absent(MirrorError):
    """The mirror answered, and the file is not there (HTTP 404/410, or no such local file)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def get(url: str, dest: Path, expected: int | None = None, on_chunk: OnChunk | None = None) -> None:
    """Download url to dest whole or not at all: at most `expected` bytes (the size the
    signed index gives; an unsigned file gets UNSIGNED_CAP), within a deadline, retried
    once when the network fails (never when the mirror says the file is absent)."""
    for attempt in (1, 2):
        try:
            _get_once(url, dest, expected, on_chunk)
            return
        except Absent:
            raise
        except MirrorError:
            if attempt == 2:
                raise
            time.sleep(RETRY_PAUSE)


def _get_once(url: str, dest: Path, expected: int | None, on_chunk: OnChunk | None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    cap = expected if expected is not None else UNSIGNED_CAP
    deadline = time.monotonic() + download_deadline(cap)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                resp = urllib.request.urlopen(url, timeout=60)
            except urllib.error.HTTPError as e:
                msg = f"{url}: HTTP {e.code}. The mirror may not carry this suite; {HOW_TO_SET}"
                if e.code in (404, 410):
                    raise Absent(msg, f"HTTP {e.code}") from e
                raise MirrorError(msg) from e
            except (urllib.error.URLError, OSError) as e:
                msg = f"cannot reach {url} ({e}); {HOW_TO_SET}"
                if isinstance(getattr(e, "reason", e), FileNotFoundError):
                    raise Absent(msg, "not found") from e
                raise MirrorError(msg) from e
            total = expected or int(resp.headers.get("Content-Length") or 0)
            done = 0
            with resp:
                try:
                    while chunk := resp.read1(1 << 20):  # what has arrived, so the
                        # deadline is checked while a slow mirror trickles
                        out.write(chunk)
                        done += len(chunk)
                        if done > cap:
                            raise VerificationError(
                                f"{url}: the mirror sent more than the {cap} bytes "
                                f"{'the signed index gives' if expected else 'allowed'}; "
                                "refusing it (a wrong or hostile mirror?)")
                        if CANCEL.is_set():
                            raise KeyboardInterrupt
                        if time.monotonic() > deadline:
                            raise MirrorError(f"{url}: not downloaded within "
                                              f"{download_deadline(cap):.0f}s; {HOW_TO_SET}")
                        if on_chunk:
                            on_chunk(done, total)
                except (OSError, http.client.HTTPException) as e:
                    raise MirrorError(f"{url}: download broke off ({e!r}); {HOW_TO_SET}") from e
            if total and done < total:
                raise MirrorError(f"{url}: download broke off after {done} of {total} bytes; "
                                  f"{HOW_TO_SET}")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def get_verified(url: str, dest: Path, sha256: str, size: int,
                 against: str = "the signed index", on_chunk: OnChunk | None = None) -> Path:
    """dest holding exactly the bytes with this checksum and size; re-fetched once if corrupt.

    A cached dest that matches is used as it is; one that does not is removed first.
    """
    if dest.exists():
        if dest.stat().st_size == size and sha256_file(dest) == sha256:
            return dest
        dest.unlink()  # corrupt cache entry: drop it and fetch again
    for attempt in (1, 2):
        get(url, dest, size, on_chunk)
        got, got_size = sha256_file(dest), dest.stat().st_size
        if got == sha256 and got_size == size:
            return dest
        dest.unlink()
        if attempt == 2:
            raise VerificationError(
                f"{url}: SHA256 {got} ({got_size} bytes) does not match {against} "
                f"({sha256}, {size} bytes) twice; the mirror is serving corrupt data, "
                "try another mirror (--mirror)"
                + ("" if against == "the signed index" else ", or the lock file was altered")
            )
    raise AssertionError("unreachable")
