"""cgroup_skb_egress_deny: sending to the denied port gives EPERM inside the check's cgroup only.

Runs on the loopback of a fresh network namespace, with a cgroup v2 made for the check under
/sys/fs/cgroup (both removed in all cases).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import socket
import struct
import time

from pyroute2 import IPRoute, netns

U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
CGROUP_ROOT = "/sys/fs/cgroup"  # cgroup v2 in the guest
HOST = "127.0.0.1"


@contextlib.contextmanager
def _inside(ns: str):
    """This thread (and what it forks) in network namespace ns for the block."""
    netns.pushns(ns)
    try:
        yield
    finally:
        netns.popns()


def _send(port: int, payload: bytes) -> int:
    """0 if a UDP datagram to HOST:port was sent, else sendto's errno."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(payload, (HOST, port))
        except OSError as e:
            return e.errno or -1
    return 0


def _child_in_cgroup(cgroup: str, denied: int, allowed: int) -> tuple[int, dict]:
    """Fork a child that joins cgroup, then sends to both ports; (pid, its errnos)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            out = {"denied": _send(denied, b"from the cgroup"),
                   "allowed": _send(allowed, b"from the cgroup")}
            os.write(w, json.dumps(out).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        raw = f.read()
    status = os.waitpid(pid, 0)[1]
    assert os.waitstatus_to_exitcode(status) == 0 and raw, (
        f"child {pid} could not join {cgroup} and send (wait status {status:#x})")
    return pid, json.loads(raw)


def _drain(s: socket.socket, quiet: float = 1.0) -> list[bytes]:
    got: list[bytes] = []
    last = start = time.monotonic()
    while time.monotonic() - last < quiet and time.monotonic() - start < 10:
        if select.select([s], [], [], 0.1)[0]:
            got.append(s.recv(256))
            last = time.monotonic()
    return got


def _rmdir(path: str) -> None:
    for _ in range(50):  # a reaped child can take a moment to leave the cgroup
        try:
            os.rmdir(path)
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.1)
    os.rmdir(path)


def _name(err: int) -> str:
    return errno.errorcode.get(err, str(err)) if err else "sent"


def check(ctx) -> str | None:
    prog = ctx.obj.programs["deny_egress_port"]
    tag = os.getpid() % 100000
    ns, cgroup = f"cgroup_skb_{tag}", os.path.join(CGROUP_ROOT, f"cgroup_skb_egress_deny.{tag}")
    assert os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")), (
        f"{CGROUP_ROOT} is not a cgroup v2 hierarchy")
    netns.create(ns)
    os.mkdir(cgroup)
    cg_fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    socks: list[socket.socket] = []
    try:
        prog.attach_cgroup(cg_fd)
        with _inside(ns):
            with IPRoute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            for _ in range(2):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((HOST, 0))
            denied, allowed = (s.getsockname()[1] for s in socks)
            ctx.obj.maps["deny_port"].update(U32.pack(0), U32.pack(denied))

            pid, child = _child_in_cgroup(cgroup, denied, allowed)
            mine = _send(denied, b"from outside")
            got_denied, got_allowed = _drain(socks[0]), _drain(socks[1])
        n = U64.unpack(ctx.obj.maps["denied"].lookup(U32.pack(0))[:8])[0]
    finally:
        for s in socks:
            s.close()
        prog.detach()
        os.close(cg_fd)
        _rmdir(cgroup)
        netns.remove(ns)

    assert child["denied"] == errno.EPERM, (
        f"child {pid} in {cgroup}: UDP to the denied port {denied} {_name(child['denied'])}, "
        "expected EPERM")
    assert child["allowed"] == 0, (
        f"child {pid} in {cgroup}: UDP to port {allowed} {_name(child['allowed'])}")
    assert mine == 0, f"pid {os.getpid()} outside the cgroup: UDP to port {denied} {_name(mine)}"
    assert got_denied == [b"from outside"], (
        f"port {denied} received {got_denied}, expected only the datagram from outside the cgroup")
    assert got_allowed == [b"from the cgroup"], f"port {allowed} received {got_allowed}"
    assert n == 1, f"map 'denied' counts {n} dropped packets, expected 1"
    return (f"child {pid} in the cgroup: EPERM sending to port {denied}, port {allowed} fine; "
            f"pid {os.getpid()} outside it reached port {denied}; 1 drop counted")
