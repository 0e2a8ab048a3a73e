"""tc_classify: UDP, ICMP and TCP from a peer namespace; counters and marks must match what was sent.

Topology (torn down in all cases): two fresh network namespaces joined by a veth pair; the
receiving end has the classifier on its tc ingress, the other end sends. The guest's own
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

KEY = struct.Struct("<HBB")  # struct proto_key in tc_classify.h
U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
ETH_P_IP = 0x0800
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 1, 6, 17
MARK_BASE = 0x00C1A500
UDP_N, ICMP_N = 5, 3
# RFC 2544 benchmarking range: never routed, unlikely to meet anything in the guest
RX_ADDR, TX_ADDR, PREFIX = "198.18.72.1", "198.18.72.2", 24


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


def _echo_request(ident: int, seq: int) -> bytes:
    msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"tc_classify!"  # even length
    total = sum(struct.unpack(f"!{len(msg) // 2}H", msg))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return msg[:2] + struct.pack("!H", ~total & 0xFFFF) + msg[4:]


def _count(packets, eth_proto: int, ip_proto: int) -> int:
    per_cpu = packets.lookup_percpu(KEY.pack(eth_proto, ip_proto, 0))
    return sum(U64.unpack(v[:8])[0] for v in per_cpu)


def check(ctx) -> str | None:
    prog = ctx.obj.programs["tc_classify"]
    packets = ctx.obj.maps["packets"]
    ctx.obj.maps["mark_base"].update(U32.pack(0), U32.pack(MARK_BASE))
    tag = f"{os.getpid() % 100000}"
    rx_ns, tx_ns = f"tc_classify_rx_{tag}", f"tc_classify_tx_{tag}"
    socks: list[socket.socket] = []

    def sock(family: int, kind: int, proto: int = 0) -> socket.socket:
        s = socket.socket(family, kind, proto)
        socks.append(s)
        return s

    netns.create(rx_ns)
    netns.create(tx_ns)
    try:
        rx_idx = _veth(rx_ns, tx_ns, f"tcc{tag}r", f"tcc{tag}t")
        with _inside(rx_ns):
            # accepted TCP sockets take the SYN's mark: how skb->mark becomes visible
            with open("/proc/sys/net/ipv4/tcp_fwmark_accept", "w") as f:
                f.write("1")
            prog.attach_tc(rx_idx, ingress=True)
            udp_rx = sock(socket.AF_INET, socket.SOCK_DGRAM)
            udp_rx.bind((RX_ADDR, 0))
            listener = sock(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind((RX_ADDR, 0))
            listener.listen(1)
        with _inside(tx_ns):
            udp_tx = sock(socket.AF_INET, socket.SOCK_DGRAM)
            icmp_tx = sock(socket.AF_INET, socket.SOCK_RAW, IPPROTO_ICMP)
            tcp_tx = sock(socket.AF_INET, socket.SOCK_STREAM)

        before = {p: _count(packets, ETH_P_IP, p) for p in (IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP)}
        for i in range(UDP_N):
            udp_tx.sendto(b"tc_classify %d" % i, udp_rx.getsockname())
        for i in range(ICMP_N):
            icmp_tx.sendto(_echo_request(os.getpid() & 0xFFFF, i), (RX_ADDR, 0))
        tcp_tx.settimeout(10)
        tcp_tx.connect(listener.getsockname())
        listener.settimeout(10)
        conn, _ = listener.accept()
        socks.append(conn)
        mark = conn.getsockopt(socket.SOL_SOCKET, socket.SO_MARK)

        got, deadline = 0, time.monotonic() + 10
        while got < UDP_N and time.monotonic() < deadline:
            if select.select([udp_rx], [], [], 0.2)[0]:
                udp_rx.recv(256)
                got += 1
        time.sleep(0.5)  # the echo requests' stragglers, if any
        after = {p: _count(packets, ETH_P_IP, p) for p in before}
    finally:
        for s in socks:
            s.close()
        prog.detach()  # in rx_ns, where it was attached
        netns.remove(tx_ns)
        netns.remove(rx_ns)  # the veth pair goes with it

    seen = {p: after[p] - before[p] for p in before}
    assert got == UDP_N, f"{got} of {UDP_N} UDP datagrams arrived"
    assert seen[IPPROTO_UDP] == UDP_N, f"IPv4/UDP counted {seen[IPPROTO_UDP]}, sent {UDP_N}"
    assert seen[IPPROTO_ICMP] == ICMP_N, (
        f"IPv4/ICMP counted {seen[IPPROTO_ICMP]}, sent {ICMP_N} echo requests")
    assert seen[IPPROTO_TCP] >= 2, (
        f"IPv4/TCP counted {seen[IPPROTO_TCP]}, expected at least the handshake's SYN and ACK")
    assert mark == MARK_BASE | IPPROTO_TCP, (
        f"accepted TCP connection carries mark {mark:#x}, expected {MARK_BASE | IPPROTO_TCP:#x}")
    return (f"ingress counted UDP {seen[IPPROTO_UDP]}, ICMP {seen[IPPROTO_ICMP]}, "
            f"TCP {seen[IPPROTO_TCP]} (sent {UDP_N}, {ICMP_N}, one connection); "
            f"the connection's SYN was marked {mark:#x}")
