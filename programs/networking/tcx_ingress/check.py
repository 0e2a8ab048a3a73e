"""tcx_ingress: datagrams to the watched port are counted while the tcx link exists, not after.

Topology (torn down in all cases): two fresh network namespaces joined by a veth pair; the
receiving end has the program on its tcx ingress, the other end sends. The guest's own
namespace is not touched.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import time

from pyroute2 import IPRoute, netns

U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
HEADERS = 14 + 20 + 8  # Ethernet, IPv4 without options, UDP: skb->len at tc ingress has all three
WATCHED_N, OTHER_N, AFTER_N = 5, 3, 2
RX_ADDR, TX_ADDR, PREFIX = "198.18.73.1", "198.18.73.2", 24  # RFC 2544 benchmarking range


@contextlib.contextmanager
def _inside(ns: str):
    """This thread in network namespace ns for the block: sockets made there stay there."""
    netns.pushns(ns)
    try:
        yield
    finally:
        netns.popns()


def _veth(rx_ns: str, tx_ns: str, rx_if: str, tx_if: str) -> int:
    """rx_if in rx_ns <-> tx_if in tx_ns, addressed and up; returns rx_if's ifindex."""
    with _inside(rx_ns), IPRoute() as ipr:
        ipr.link("add", ifname=rx_if, kind="veth", peer=tx_if)
        rx = ipr.link_lookup(ifname=rx_if)[0]
        ipr.link("set", index=ipr.link_lookup(ifname=tx_if)[0], net_ns_fd=tx_ns)
        ipr.addr("add", index=rx, address=RX_ADDR, prefixlen=PREFIX)
        ipr.link("set", index=rx, state="up")
    with _inside(tx_ns), IPRoute() as ipr:
        tx = ipr.link_lookup(ifname=tx_if)[0]
        ipr.addr("add", index=tx, address=TX_ADDR, prefixlen=PREFIX)
        ipr.link("set", index=tx, state="up")
    return rx


def _receive(s: socket.socket, want: int) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + 10
    while len(got) < want and time.monotonic() < deadline:
        if select.select([s], [], [], 0.2)[0]:
            got.append(s.recv(256))
    return got


def _stats(stats) -> tuple[int, int]:
    def total(key: int) -> int:
        return sum(U64.unpack(v[:8])[0] for v in stats.lookup_percpu(U32.pack(key)))
    return total(0), total(1)


def check(ctx) -> str | None:
    prog = ctx.obj.programs["tcx_ingress"]
    stats = ctx.obj.maps["stats"]
    tag = f"{os.getpid() % 100000}"
    rx_ns, tx_ns = f"tcx_ingress_rx_{tag}", f"tcx_ingress_tx_{tag}"
    socks: list[socket.socket] = []
    netns.create(rx_ns)
    netns.create(tx_ns)
    try:
        rx_idx = _veth(rx_ns, tx_ns, f"tcx{tag}r", f"tcx{tag}t")
        with _inside(rx_ns):
            link_fd = prog.attach_tcx(rx_idx, ingress=True)
            for _ in range(2):  # two ports picked by the kernel
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((RX_ADDR, 0))
        with _inside(tx_ns):
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(tx)
        watched, other = socks[0], socks[1]
        wport, oport = watched.getsockname()[1], other.getsockname()[1]
        ctx.obj.maps["watch_port"].update(U32.pack(0), U32.pack(wport))

        payloads = [b"tcx_ingress %d" % i for i in range(WATCHED_N)]
        for p in payloads:
            tx.sendto(p, (RX_ADDR, wport))
        for i in range(OTHER_N):
            tx.sendto(b"tcx_ingress other %d" % i, (RX_ADDR, oport))
        got_w, got_o = _receive(watched, WATCHED_N), _receive(other, OTHER_N)
        linked = _stats(stats)

        prog.detach()  # closes the link fd: the program leaves the device
        for i in range(AFTER_N):
            tx.sendto(b"tcx_ingress after %d" % i, (RX_ADDR, wport))
        got_after = _receive(watched, AFTER_N)
        unlinked = _stats(stats)
    finally:
        for s in socks:
            s.close()
        prog.detach()
        netns.remove(tx_ns)
        netns.remove(rx_ns)  # the veth pair goes with it

    want_bytes = sum(HEADERS + len(p) for p in payloads)
    assert len(got_w) == WATCHED_N and len(got_o) == OTHER_N, (
        f"with the tcx link: {len(got_w)} of {WATCHED_N} datagrams to port {wport} and "
        f"{len(got_o)} of {OTHER_N} to port {oport} arrived; TCX_NEXT must let all pass")
    assert linked == (WATCHED_N, want_bytes), (
        f"with the tcx link (fd {link_fd}): counted {linked[0]} datagrams / {linked[1]} bytes "
        f"for port {wport}, sent {WATCHED_N} / {want_bytes}")
    assert len(got_after) == AFTER_N, f"after detach: {len(got_after)} of {AFTER_N} arrived"
    assert unlinked == linked, (
        f"after the link was closed the counters moved from {linked} to {unlinked}")
    return (f"tcx link on ifindex {rx_idx}: {linked[0]} datagrams / {linked[1]} bytes counted "
            f"for port {wport} ({OTHER_N} to port {oport} ignored, all delivered); "
            f"nothing counted once the link was closed")
