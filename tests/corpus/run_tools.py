"""Ground truth for the corpus test, run inside a kernel by `ebpf-harness run`: each
libbpf tool with the options its set-up file mirrors, for a few seconds. A tool that is
still running then has loaded and attached (it is stopped with SIGINT); one that exits
first has not. One line per tool: 'TOOL works' or 'TOOL fails: ...'."""

import signal
import subprocess
import sys

SECONDS = 3.0
TOOLS = {
    "biolatency": [], "vfsstat": [], "funclatency": ["vfs_read"], "offcputime": [],
    "capable": [], "cpudist": [], "softirqs": [], "hardirqs": [], "runqlat": [],
    "tcpconnlat": [], "execsnoop": [],
}


def main(names: list[str]) -> None:
    for name in names or TOOLS:
        proc = subprocess.Popen([f"/usr/sbin/{name}", *TOOLS[name]], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=SECONDS)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            print(f"{name} works", flush=True)
            continue
        last = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()][-1:]
        print(f"{name} fails: exit {proc.returncode}: {' '.join(last)[:200]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
