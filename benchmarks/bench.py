"""How much the harness costs over a hand-written VM run, measured side by side.

For each kernel: a hand-written baseline (vng with the harness's own options, bpffs
mounted, `bpftool prog loadall` on every object) and `ebpf-harness check` on the same
objects, each timed as wall clock, and their ratio. With --matrix, also the default
matrix with -j 1 and -j 2. Prints the figures and writes them as JSON.

    .venv/bin/python benchmarks/bench.py --kernels 6.12 --objects 15 --json bench.json

Figures from a shared machine are noisy: compare ratios taken in one run, not absolute
times from different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import tools  # noqa: E402
from harness.config import load_config  # noqa: E402
from harness.report.progress import Progress  # noqa: E402
from harness.session import prepare_kernels, subjects_for_suite  # noqa: E402
from harness.vm.accel import choose_accel  # noqa: E402
from harness.vm.argv import vng_argv  # noqa: E402
from harness.vm.backend import supervise  # noqa: E402


def harness_exe() -> list[str]:
    exe = REPO / ".venv" / "bin" / "ebpf-harness"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]


def timed(argv: list[str], cwd: Path | None = None) -> tuple[float, int, str]:
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=3600)
    return time.monotonic() - t0, p.returncode, (p.stdout + p.stderr)[-2000:]


def objects(n: int, kernels: list, cfg) -> list[Path]:
    """The first n compiled objects of the bundled libbpf programs."""
    subs = subjects_for_suite(None, kernels, cfg)
    objs = [Path(s.task["object"]) for s in subs if s.task.get("kind") == "program"
            and s.task.get("object")]
    return objs[:n]


def baseline(vmlinuz: Path, objs: list[Path], accel: str, workdir: Path) -> tuple[float, int]:
    """The hand-written run: same vng options as the harness, bpftool on each object."""
    vng = tools.which("vng")
    script = "mount -t bpf bpf /sys/fs/bpf 2>/dev/null; ok=0; " + " ".join(
        f"bpftool prog loadall {o} /sys/fs/bpf/o{i} >/dev/null 2>&1 && ok=$((ok+1));"
        for i, o in enumerate(objs)) + f" echo $ok > {workdir}/loaded"
    # the harness's own vng command line (same options, same process handling), so that
    # only what runs inside differs
    # in a file: a long command goes on the kernel command line, and past its 2 KiB limit
    # the kernel panics at boot
    (workdir / "bench.sh").write_text(script + "\n")
    argv = vng_argv(vng, vmlinuz, workdir, ["sh", str(workdir / "bench.sh")], accel=accel,
                    name="bench")
    env = dict(os.environ, PATH=f"{Path(vng).parent}:{os.environ.get('PATH', '')}")
    t0 = time.monotonic()
    with open(workdir.parent / f"{workdir.name}.console.log", "wb") as console:
        proc = tools.popen(argv, stdout=console, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        supervise(proc, 900)
    took = time.monotonic() - t0
    loaded = (workdir / "loaded").read_text().strip() if (workdir / "loaded").exists() else "0"
    return took, int(loaded or 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default="6.12", help="kernel ids, comma-separated")
    ap.add_argument("--objects", type=int, default=15, help="how many bundled objects")
    ap.add_argument("--matrix", action="store_true",
                    help="also time the default matrix with -j 1 and -j 2 (long under TCG)")
    ap.add_argument("--json", type=Path, default=Path("bench.json"))
    args = ap.parse_args()

    cfg = load_config(REPO)
    kernels = prepare_kernels(args.kernels, cfg, Progress(quiet=True))
    accel = choose_accel(cfg.accel)
    objs = objects(args.objects, kernels, cfg)
    out: dict = {"machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                             "accel": accel}, "objects": len(objs), "kernels": {}}
    for k in kernels:
        with tempfile.TemporaryDirectory(prefix="bench-") as td:
            raw, loaded = baseline(k.vmlinuz, objs, accel, Path(td))
        took, rc, _ = timed([*harness_exe(), "check", "-k", k.id, "-q", "--json",
                                str(Path(tempfile.gettempdir()) / "bench-check.json"),
                                *map(str, objs)])
        out["kernels"][k.id] = {"release": k.release, "baseline_s": round(raw, 1),
                                "baseline_loaded": loaded, "check_s": round(took, 1),
                                "check_exit": rc, "ratio": round(took / raw, 2)}
        print(f"{k.id:>6}: baseline (vng + bpftool, {loaded}/{len(objs)} objects loaded) "
              f"{raw:6.1f}s   ebpf-harness check {took:6.1f}s (exit {rc})   "
              f"ratio {took / raw:.2f}")
    if args.matrix:
        for jobs in (1, 2):
            took, rc, _ = timed([*harness_exe(), "matrix", "-q", "-j", str(jobs)], cwd=REPO)
            out[f"matrix_j{jobs}_s"] = round(took, 1)
            print(f"matrix -j {jobs}: {took:.0f}s (exit {rc})")
        out["matrix_speedup_j2"] = round(out["matrix_j1_s"] / out["matrix_j2_s"], 2)
        print(f"-j 2 speed-up: {out['matrix_speedup_j2']:.2f}x")
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
