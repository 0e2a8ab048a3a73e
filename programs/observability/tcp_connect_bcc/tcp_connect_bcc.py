#!/usr/bin/env python3
# Counts active TCP opens per (pid, destination port) from sock:inet_sock_set_state (moves to SYN_SENT).
# The BCC counterpart of tcp_connect_trace: a tracepoint, as BCC 0.26 cannot compile new <net/sock.h>.
"""Exit 0 when this script's connect to a local listener is counted for its pid and port; 1 otherwise."""

import os
import socket
import subprocess
import sys

from bcc import BPF

# A kprobe on tcp_connect would read struct sock, which means including <net/sock.h>; with
# 6.12's headers that pulls in BPF types (struct bpf_rb_node, bpf_refcount) missing from the
# uapi bpf.h bundled with BCC 0.26, and the compile fails. The tracepoint hands over ports
# and state as plain fields, no kernel header needed.
PROGRAM = r"""
#define TCP_SYN_SENT 2  /* enum in include/net/tcp_states.h */
#define PROTO_TCP 6

struct conn_key {
    u32 pid;
    u16 dport; /* host byte order, as the tracepoint gives it */
    u16 pad;
};

BPF_HASH(connects, struct conn_key, u64);

/* connect() moves the socket to SYN_SENT in the connecting task, before the SYN leaves */
TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    struct conn_key key = {};

    if (args->protocol != PROTO_TCP || args->newstate != TCP_SYN_SENT)
        return 0;
    key.pid = bpf_get_current_pid_tgid() >> 32;
    key.dport = args->dport;
    connects.increment(key);
    return 0;
}
"""


def loopback_up() -> None:
    """The guest may boot with lo down; bringing it up is idempotent."""
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
    except OSError:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def main() -> int:
    loopback_up()
    b = BPF(text=PROGRAM)
    pid = os.getpid()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            conn, _ = server.accept()
            conn.close()
    connects = b["connects"]
    count = connects.get(connects.Key(pid=pid, dport=port))
    seen = count.value if count is not None else 0
    if seen != 1:
        others = [(k.pid, k.dport, v.value) for k, v in connects.items()]
        print(f"pid {pid} -> port {port} counted {seen} times, expected 1; map holds {others}")
        return 1
    print(f"pid {pid}: connect to 127.0.0.1:{port} counted once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
