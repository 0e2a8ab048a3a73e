"""lsm_socket_connect: deny one listening port; TCP and UDP connect() to it fail with EPERM."""

from __future__ import annotations

import errno
import os
import socket
import struct

PORT = struct.Struct("<H")
DENIAL = struct.Struct("<QII")  # struct denial: count, last_pid, pad
HOST = "127.0.0.1"


def _connect(kind: int, port: int) -> int:
    """0 if connect() to HOST:port succeeds, else its errno."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(10)
        try:
            s.connect((HOST, port))
        except OSError as e:
            return e.errno or -1
    return 0


def _name(err: int) -> str:
    return errno.errorcode.get(err, str(err)) if err else "success"


def check(ctx) -> str | None:
    ports = ctx.obj.maps["denied_ports"]
    listeners = []
    key = None
    try:
        for _ in range(2):  # two ports picked by the kernel, both listening
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            s.listen(4)
            listeners.append(s)
        denied, allowed = (s.getsockname()[1] for s in listeners)
        key = PORT.pack(denied)
        ports.update(key, DENIAL.pack(0, 0, 0))

        err = _connect(socket.SOCK_STREAM, denied)
        assert err == errno.EPERM, (
            f"TCP connect to the denied port {denied}: {_name(err)}, expected EPERM")
        err = _connect(socket.SOCK_DGRAM, denied)
        assert err == errno.EPERM, (
            f"UDP connect to the denied port {denied}: {_name(err)}, expected EPERM")
        err = _connect(socket.SOCK_STREAM, allowed)
        assert err == 0, f"TCP connect to the allowed port {allowed}: {_name(err)}"

        raw = ports.lookup(key)
        assert raw is not None, f"port {denied} vanished from map 'denied_ports'"
        count, last_pid, _ = DENIAL.unpack(raw)
        assert count == 2, f"map 'denied_ports' counts {count} refusals for port {denied}, expected 2"
        assert last_pid == os.getpid(), (
            f"map 'denied_ports' names pid {last_pid} as refused, not {os.getpid()}")

        ports.delete(key)
        key = None
        err = _connect(socket.SOCK_STREAM, denied)
        assert err == 0, f"TCP connect to port {denied} after it was allowed again: {_name(err)}"
        return (f"pid {os.getpid()}: TCP and UDP connect to port {denied} refused with EPERM "
                f"(counted twice); port {allowed}, and {denied} once unlisted, connect")
    finally:
        if key is not None:
            ports.delete(key)
        for s in listeners:
            s.close()
