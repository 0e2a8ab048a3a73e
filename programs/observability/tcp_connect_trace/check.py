"""tcp_connect_trace: connect to a local listener on a random port; find that connect by pid and ports."""

from __future__ import annotations

import os
import socket
import struct
import time

EVENT = struct.Struct("<IHHHH4s4s16s")  # struct connect_event in tcp_connect_trace.h
LOOPBACK = "127.0.0.1"


def _loopback_up(ctx) -> None:
    """The guest may boot with lo down; bringing it up is idempotent."""
    try:
        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
    except OSError:
        proc = ctx.run(["ip", "link", "set", "lo", "up"])
        assert proc.returncode == 0, f"cannot bring lo up: {proc.stderr.decode().strip()}"


def _wait_for(ring, pid: int, dport: int, seen: list) -> tuple | None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for raw in ring.poll(0.5):
            assert len(raw) >= EVENT.size, f"event of {len(raw)} bytes, expected {EVENT.size}"
            ev = EVENT.unpack_from(raw)
            if ev[0] == pid and ev[3] == dport:
                return ev
            seen.append((ev[0], ev[3]))
    return None


def check(ctx) -> str | None:
    _loopback_up(ctx)
    ring = ctx.obj.ringbuf("events")
    pid = os.getpid()
    seen: list[tuple[int, int]] = []

    with socket.socket() as server:
        server.bind((LOOPBACK, 0))
        server.listen(1)
        port = server.getsockname()[1]
        with socket.create_connection((LOOPBACK, port), timeout=10) as client:
            sport = client.getsockname()[1]
            conn, _ = server.accept()
            conn.close()
        ev = _wait_for(ring, pid, port, seen)
    assert ev is not None, (
        f"no tcp_connect event for pid {pid} to port {port} within 10 s; saw {seen[:5]}")
    _, family, esport, _, _, saddr, daddr, comm = ev
    assert family == socket.AF_INET, f"family {family}, expected AF_INET"
    assert esport == sport, f"event source port {esport}, the client socket has {sport}"
    assert socket.inet_ntoa(daddr) == LOOPBACK, f"destination {socket.inet_ntoa(daddr)}"
    assert socket.inet_ntoa(saddr) == LOOPBACK, f"source {socket.inet_ntoa(saddr)}"

    # a refused connect sends a SYN too, so it is reported as well
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        closed = probe.getsockname()[1]
    with socket.socket() as client:
        try:
            client.connect((LOOPBACK, closed))
            raise AssertionError(f"connect to closed port {closed} succeeded")
        except ConnectionRefusedError:
            pass
    refused = _wait_for(ring, pid, closed, seen)
    assert refused is not None, f"no tcp_connect event for the refused connect to port {closed}"
    name = comm.split(b"\0", 1)[0].decode(errors="replace")
    return (f"pid {pid} ({name}): connect {LOOPBACK}:{sport} -> :{port} seen, "
            f"and the refused connect to :{closed}")
