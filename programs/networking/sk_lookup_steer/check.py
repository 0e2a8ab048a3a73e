"""sk_lookup_steer: a connect to a port nobody listens on is accepted by the listener on another port.

Runs on the loopback of a fresh network namespace, which the program is attached to (the
namespace is removed in all cases; the guest's own is not touched).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct

from pyroute2 import IPRoute, netns

U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
HOST = "127.0.0.1"
NETNS_DIR = "/var/run/netns"  # where pyroute2 (like iproute2) binds named namespaces


@contextlib.contextmanager
def _inside(ns: str):
    """This thread in network namespace ns for the block: sockets made there stay there."""
    netns.pushns(ns)
    try:
        yield
    finally:
        netns.popns()


def _free_port() -> int:
    """A port nothing listens on (in a fresh namespace, any the kernel hands out)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def check(ctx) -> str | None:
    prog = ctx.obj.programs["steer"]
    ns = f"sk_lookup_steer_{os.getpid() % 100000}"
    socks: list[socket.socket] = []

    def sock() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        socks.append(s)
        return s

    netns.create(ns)
    ns_fd = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY)
    try:
        with _inside(ns):
            with IPRoute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            listener = sock()
            listener.bind((HOST, 0))
            listener.listen(4)
            steered_port, plain_port = _free_port(), _free_port()
            client, other = sock(), sock()
        listen_port = listener.getsockname()[1]

        prog.attach_netns(ns_fd)
        ctx.obj.maps["target"].update(U32.pack(0), U64.pack(listener.fileno()))
        ctx.obj.maps["steer_port"].update(U32.pack(0), U32.pack(steered_port))

        try:
            client.connect((HOST, steered_port))
        except OSError as e:
            raise AssertionError(
                f"connect to the steered port {steered_port}: {errno.errorcode.get(e.errno, e)}; "
                f"expected the listener on port {listen_port} to take it") from e
        conn, _ = listener.accept()
        socks.append(conn)
        client.sendall(b"sk_lookup_steer")
        data = conn.recv(64)
        local = conn.getsockname()

        refused = 0
        try:
            other.connect((HOST, plain_port))
        except OSError as e:
            refused = e.errno or -1
        n = U64.unpack(ctx.obj.maps["steered"].lookup(U32.pack(0))[:8])[0]
    finally:
        for s in socks:
            s.close()
        prog.detach()
        os.close(ns_fd)
        netns.remove(ns)

    assert data == b"sk_lookup_steer", f"the steered connection carried {data!r}"
    assert local[1] == steered_port, (
        f"the accepted socket's local address is {local}, expected port {steered_port}")
    assert refused == errno.ECONNREFUSED, (
        f"connect to the unsteered free port {plain_port}: "
        f"{errno.errorcode.get(refused, refused) if refused else 'success'}, expected ECONNREFUSED")
    assert n == 1, f"map 'steered' counts {n} connections, expected 1"
    return (f"connect to port {steered_port} (no listener) accepted by the listener on port "
            f"{listen_port}; port {plain_port} still refused; 1 steering counted")
