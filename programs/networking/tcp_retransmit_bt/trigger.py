"""A SYN that is never answered: a dummy device takes every packet sent to its subnet and
drops it, so the kernel retransmits the SYN once its initial timeout (one second) passes."""

import socket
import subprocess

subprocess.run(["ip", "link", "add", "bt_drop0", "type", "dummy"], check=False)
subprocess.run(["ip", "addr", "add", "10.213.0.1/24", "dev", "bt_drop0"], check=True)
subprocess.run(["ip", "link", "set", "bt_drop0", "up"], check=True)
try:
    socket.create_connection(("10.213.0.2", 80), timeout=2.5)
except OSError:
    pass
finally:
    subprocess.run(["ip", "link", "del", "bt_drop0"], check=False)
