"""Downloads are capped at the size the signed index gives, bounded in time and retried
once: a local HTTP server on 127.0.0.1 plays the misbehaving mirror."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import MirrorError, VerificationError
from harness.kernels import download


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/big":
            body = b"x" * 5000
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"y" * 10)
                self.wfile.flush()
                time.sleep(0.05)
            return
        elif self.path == "/flaky" and self.hits[self.path] == 1:
            self.send_response(500)
            self.end_headers()
            return
        else:
            body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.hits = {}
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_more_bytes_than_the_index_gives_are_refused(tmp_path: Path, server: str):
    dest = tmp_path / "f"
    with pytest.raises(VerificationError, match="more than the 100 bytes the signed index gives"):
        download.get(f"{server}/big", dest, expected=100)
    assert not dest.exists() and not list(tmp_path.glob(".f.*"))  # nothing half-written


def test_a_download_past_its_deadline_is_stopped(tmp_path: Path, server: str,
                                                 monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(download, "download_deadline", lambda size: 0.5)
    monkeypatch.setattr(download, "RETRY_PAUSE", 0.0)
    t0 = time.monotonic()
    with pytest.raises(MirrorError, match="not downloaded within"):
        download.get(f"{server}/slow", tmp_path / "f", expected=1000)
    assert time.monotonic() - t0 < 8
    assert _Handler.hits["/slow"] == 2  # retried once


def test_a_transient_failure_is_retried_once(tmp_path: Path, server: str,
                                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(download, "RETRY_PAUSE", 0.0)
    dest = tmp_path / "f"
    download.get(f"{server}/flaky", dest, expected=2)
    assert dest.read_bytes() == b"ok" and _Handler.hits["/flaky"] == 2
