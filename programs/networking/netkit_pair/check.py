"""netkit_pair: UDP from the peer side to the dropped port never arrives, to another port it does.

Topology (torn down in all cases): two fresh network namespaces, "host" with the netkit
primary device and "pod" with its peer (L3 mode, the default). The program sits on the
peer's side (BPF_NETKIT_PEER), so it sees what the pod sends. pyroute2 0.7 and iproute2
6.1 have no netkit support of their own: the link is created with a bare
IFLA_INFO_KIND "netkit", which takes the kernel's defaults (peer named nk%d, L3, pass).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import time

from pyroute2 import IPRoute, NetlinkError, netns

NK_PASS, NK_DROP = 0, 2  # enum netkit_action
U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
N = 4
HOST_ADDR, POD_ADDR, PREFIX = "198.18.74.1", "198.18.74.2", 24  # RFC 2544 benchmarking range


@contextlib.contextmanager
def _inside(ns: str):
    """This thread in network namespace ns for the block: sockets made there stay there."""
    netns.pushns(ns)
    try:
        yield
    finally:
        netns.popns()


def _netkit(host_ns: str, pod_ns: str, name: str) -> int:
    """A netkit pair: primary `name` in host_ns, its peer in pod_ns; returns the primary's ifindex."""
    with _inside(host_ns), IPRoute() as ipr:
        try:
            ipr.link("add", ifname=name, kind="netkit")
        except NetlinkError as e:
            raise AssertionError(
                f"cannot create netkit device {name}: {os.strerror(e.code)} (netkit is 6.7+, "
                "CONFIG_NETKIT)") from e
        primary = ipr.link_lookup(ifname=name)[0]
        peer = ipr.get_links(primary)[0].get_attr("IFLA_LINK")
        assert peer, f"netkit device {name} names no peer (IFLA_LINK)"
        ipr.link("set", index=peer, net_ns_fd=pod_ns)
        ipr.addr("add", index=primary, address=HOST_ADDR, prefixlen=PREFIX)
        ipr.link("set", index=primary, state="up")
    with _inside(pod_ns), IPRoute() as ipr:
        links = [x for x in ipr.get_links() if x.get_attr("IFLA_IFNAME") != "lo"]
        assert len(links) == 1, f"expected the netkit peer alone in {pod_ns}, found {len(links)}"
        idx = links[0]["index"]
        ipr.addr("add", index=idx, address=POD_ADDR, prefixlen=PREFIX)
        ipr.link("set", index=idx, state="up")
    return primary


def _drain(s: socket.socket, quiet: float = 1.0) -> list[bytes]:
    got: list[bytes] = []
    last = start = time.monotonic()
    while time.monotonic() - last < quiet and time.monotonic() - start < 10:
        if select.select([s], [], [], 0.1)[0]:
            got.append(s.recv(256))
            last = time.monotonic()
    return got


def _verdicts(m) -> dict[int, int]:
    return {v: sum(U64.unpack(x[:8])[0] for x in m.lookup_percpu(U32.pack(v)))
            for v in (NK_PASS, NK_DROP)}


def check(ctx) -> str | None:
    prog = ctx.obj.programs["netkit_pair"]
    tag = f"{os.getpid() % 100000}"
    host_ns, pod_ns = f"netkit_host_{tag}", f"netkit_pod_{tag}"
    socks: list[socket.socket] = []
    netns.create(host_ns)
    netns.create(pod_ns)
    try:
        primary = _netkit(host_ns, pod_ns, f"nkp{tag}")
        with _inside(host_ns):
            prog.attach_netkit(primary, peer=True)
            for _ in range(2):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((HOST_ADDR, 0))
        with _inside(pod_ns):
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(tx)
        drop_port, pass_port = socks[0].getsockname()[1], socks[1].getsockname()[1]
        ctx.obj.maps["drop_port"].update(U32.pack(0), U32.pack(drop_port))

        before = _verdicts(ctx.obj.maps["verdicts"])
        for i in range(N):
            tx.sendto(b"netkit_pair %d" % i, (HOST_ADDR, drop_port))
            tx.sendto(b"netkit_pair %d" % i, (HOST_ADDR, pass_port))
        got_drop, got_pass = _drain(socks[0]), _drain(socks[1])
        after = _verdicts(ctx.obj.maps["verdicts"])
    finally:
        for s in socks:
            s.close()
        prog.detach()
        netns.remove(pod_ns)
        netns.remove(host_ns)  # the netkit pair goes with them

    assert len(got_pass) == N, f"{len(got_pass)} of {N} datagrams to port {pass_port} arrived"
    assert not got_drop, f"{len(got_drop)} datagrams to the dropped port {drop_port} arrived"
    dropped, passed = after[NK_DROP] - before[NK_DROP], after[NK_PASS] - before[NK_PASS]
    assert dropped == N, f"NETKIT_DROP counted {dropped}, expected {N}"
    assert passed >= N, f"NETKIT_PASS counted {passed}, expected at least {N}"
    return (f"netkit peer link on primary ifindex {primary}: {N} datagrams to port {drop_port} "
            f"dropped, {N} to port {pass_port} delivered; verdicts drop +{dropped}, pass +{passed}")
