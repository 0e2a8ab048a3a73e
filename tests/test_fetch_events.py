"""Preparing kernels reports typed events; the one progress renderer shows them as the
lines it always printed. No network, no VM."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest

from harness import session
from harness.config import load_config
from harness.errors import MirrorError
from harness.events import DownloadProgress, KernelFetchFailed, KernelReady, KernelResolving
from harness.report.progress import Progress


def _lines(out: io.StringIO) -> list[str]:
    return [re.sub(r"^\[ *[0-9.]+s\] ", "", ln) for ln in out.getvalue().splitlines()]


def test_fetch_events_render_as_the_fetch_and_ready_lines():
    out = io.StringIO()
    p = Progress(stream=out, tty=False)
    p.event(KernelResolving("6.12"))
    p.event(KernelResolving("5.10", "5.10.0-32-amd64", "debian:bullseye 5.10.223-1"))
    p.event(DownloadProgress("linux-image-x", 50, 100, "6.12"))  # a CI log: not yet
    p.event(DownloadProgress("linux-image-x", 100, 100, "6.12"))
    p.event(KernelReady("6.12", "6.12.5+deb13-amd64", "debian:trixie 6.12.5-1", False))
    p.event(KernelReady("5.10", "5.10.0-32-amd64", "debian:bullseye 5.10.223-1", True))
    p.event(KernelFetchFailed("7.2", "cannot reach the mirror"))  # raised to the caller instead
    assert _lines(out) == [
        "    6.12 fetch  resolving in the signed archive index",
        "    5.10 fetch  locked build 5.10.0-32-amd64 (debian:bullseye 5.10.223-1)",
        "download linux-image-x [########################]    0.0/0.0 MB",
        "    6.12 ready  6.12.5+deb13-amd64 (debian:trixie 6.12.5-1)",
        "    5.10 ready  5.10.0-32-amd64 (debian:bullseye 5.10.223-1, locked)",
    ]
    quiet = io.StringIO()
    Progress(stream=quiet, quiet=True).event(KernelResolving("6.12"))
    assert quiet.getvalue() == ""


def test_prepare_kernels_emits_resolving_ready_and_the_failure(tmp_path, monkeypatch):
    heard: list[object] = []

    class Recorder(Progress):
        def event(self, ev):  # type: ignore[override]
            heard.append(ev)

    def prepare(req, catalog, config, listener=None):
        listener(DownloadProgress(f"{req.id} image", 1, 1, req.id))
        if req.id == "6.1":
            raise MirrorError("cannot reach the mirror for 6.1\nsecond line")
        return SimpleNamespace(id=req.id, release=f"{req.id}-rel", origin="test")

    monkeypatch.setattr(session, "prepare", prepare)
    cfg = load_config(tmp_path, env={}).with_overrides(cache_dir=tmp_path / "c")
    session.prepare_kernels("5.10,6.12", cfg, Recorder(quiet=True))
    assert heard[:2] == [KernelResolving("5.10"), KernelResolving("6.12")]  # before any work
    assert [e for e in heard if isinstance(e, KernelReady)] == [  # in the order asked for
        KernelReady("5.10", "5.10-rel", "test", False), KernelReady("6.12", "6.12-rel", "test", False)]
    assert {e for e in heard if isinstance(e, DownloadProgress)} == {
        DownloadProgress("5.10 image", 1, 1, "5.10"), DownloadProgress("6.12 image", 1, 1, "6.12")}
    heard.clear()
    with pytest.raises(MirrorError):
        session.prepare_kernels("6.1", cfg, Recorder(quiet=True))
    assert heard[-1] == KernelFetchFailed("6.1", "cannot reach the mirror for 6.1")
