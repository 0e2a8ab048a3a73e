"""xdp_drop_udp: UDP to the marked port dies in XDP, UDP to another port arrives; counters agree.

Topology (torn down in all cases): a veth pair, one end in the guest's own network
namespace with the XDP program attached, the other end in a fresh namespace that sends.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time

from pyroute2 import IPRoute, NetNS, netns

XDP_DROP, XDP_PASS = 1, 2
U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
PACKETS = 5
# RFC 2544 benchmarking range: never routed, unlikely to meet anything in the guest
RX_ADDR, TX_ADDR, PREFIX = "198.18.71.1", "198.18.71.2", 24

SENDER = """
import socket, sys
dst, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in sys.argv[3:]:
    for i in range(n):
        s.sendto(b"xdp_drop_udp %s %d" % (port.encode(), i), (dst, int(port)))
"""


def _actions(action_count) -> dict[int, int]:
    out = {}
    for action in (XDP_DROP, XDP_PASS):
        per_cpu = action_count.lookup_percpu(U32.pack(action))
        out[action] = sum(U64.unpack(v[:8])[0] for v in per_cpu)
    return out


def _receive(socks: dict[int, socket.socket], want_port: int, want: int, quiet: float) -> dict:
    """Datagrams per port until want_port has `want` and nothing came for `quiet` seconds."""
    got: dict[int, list[bytes]] = {p: [] for p in socks}
    by_fd = {s.fileno(): p for p, s in socks.items()}
    deadline = time.monotonic() + 15
    last = time.monotonic()
    while time.monotonic() < deadline:
        ready, _, _ = select.select(list(socks.values()), [], [], 0.2)
        for s in ready:
            got[by_fd[s.fileno()]].append(s.recv(256))
            last = time.monotonic()
        if len(got[want_port]) >= want and time.monotonic() - last >= quiet:
            break
    return got


def check(ctx) -> str | None:
    prog = ctx.obj.programs["xdp_drop_udp"]
    tag = f"{os.getpid() % 100000}"
    ns, rx_if, tx_if = f"xdp_drop_udp_{tag}", f"xdu{tag}r", f"xdu{tag}t"
    ipr = IPRoute()
    netns.create(ns)
    socks: dict[int, socket.socket] = {}
    try:
        ipr.link("add", ifname=rx_if, kind="veth", peer=tx_if)
        rx_idx = ipr.link_lookup(ifname=rx_if)[0]
        tx_idx = ipr.link_lookup(ifname=tx_if)[0]
        ipr.link("set", index=tx_idx, net_ns_fd=ns)
        ipr.addr("add", index=rx_idx, address=RX_ADDR, prefixlen=PREFIX)
        ipr.link("set", index=rx_idx, state="up")
        with NetNS(ns) as nsr:
            idx = nsr.link_lookup(ifname=tx_if)[0]
            nsr.addr("add", index=idx, address=TX_ADDR, prefixlen=PREFIX)
            nsr.link("set", index=idx, state="up")
            nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")

        for _ in range(2):  # two ports picked by the kernel, both free on RX_ADDR
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((RX_ADDR, 0))
            socks[s.getsockname()[1]] = s
        drop_port, pass_port = sorted(socks)

        ctx.obj.maps["drop_port"].update(U32.pack(0), U32.pack(drop_port))
        prog.attach_xdp(rx_idx)
        before = _actions(ctx.obj.maps["action_count"])

        r = ctx.run(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER,
                     RX_ADDR, str(PACKETS), str(drop_port), str(pass_port)])
        assert r.returncode == 0, (
            f"sender in netns {ns} failed: {r.stderr.decode(errors='replace').strip()[-300:]}")

        got = _receive(socks, pass_port, PACKETS, quiet=1.0)
        after = _actions(ctx.obj.maps["action_count"])
    finally:
        prog.detach()
        for s in socks.values():
            s.close()
        try:
            idx = ipr.link_lookup(ifname=rx_if)
            if idx:
                ipr.link("del", index=idx[0])  # takes its peer with it
        finally:
            ipr.close()
            netns.remove(ns)

    assert len(got[pass_port]) == PACKETS, (
        f"{len(got[pass_port])} of {PACKETS} datagrams to the open port {pass_port} arrived")
    assert not got[drop_port], (
        f"{len(got[drop_port])} datagrams to the dropped port {drop_port} arrived: "
        f"{got[drop_port][:2]}")
    dropped = after[XDP_DROP] - before[XDP_DROP]
    passed = after[XDP_PASS] - before[XDP_PASS]
    assert dropped == PACKETS, f"XDP_DROP counter rose by {dropped}, expected {PACKETS}"
    assert passed >= PACKETS, f"XDP_PASS counter rose by {passed}, expected at least {PACKETS}"
    return (f"{PACKETS} UDP datagrams to port {drop_port} dropped, {PACKETS} to port "
            f"{pass_port} delivered; counters drop +{dropped}, pass +{passed}")
