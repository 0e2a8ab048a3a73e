"""What the harness costs, and what its parallelism gains, measured side by side.

    .venv/bin/python benchmarks/bench.py [--kernels 5.10,6.12] [--objects 15]
                                         [--slice] [--matrix] [--plugin] [--json bench.json]

Always, per kernel: a hand-written baseline (vng with the harness's own options, bpffs
mounted, `bpftool prog loadall` on every object) and `ebpf-harness check` on the same
objects, wall clock each, their ratio, and how long after the baseline's command started
(guest uptime) the harness's first check started.
--slice:  `matrix --programs 'networking/*'` on those kernels with -j 1 and -j 2.
--matrix: the default matrix (27 programs, 5 kernels) with -j 1 and -j auto.
--plugin: a small pytest file through the plugin on those kernels.
--arm64 LINES: the bundled suite on each line and on the same line built for arm64, one
          after the other with -j 1 (TCG on an x86_64 host): wall time, guest boot time
          and VM time side by side, and the arm64 guest root loaded from the cache.
Prints the figures and writes them as JSON, with the machine they were measured on.

Figures from a shared machine are noisy: compare ratios taken in one run, not absolute
times from different runs. Every VM here runs alone, one after the other.
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
from harness.results import Report  # noqa: E402
from harness.session import prepare_kernels, subjects_for_suite  # noqa: E402
from harness.vm.accel import choose_accel  # noqa: E402
from harness.vm.argv import vng_argv  # noqa: E402
from harness.vm.backend import supervise  # noqa: E402
from harness.vm.plan import available_memory_mb, choose, host_cores, memory_mb  # noqa: E402

PLUGIN_TESTS = '''
import os


def test_release(kernel):
    assert os.uname().release == kernel.release


def test_kprobe(kernel):
    assert kernel.has_prog_type("kprobe")
'''


def harness_exe() -> list[str]:
    exe = REPO / ".venv" / "bin" / "ebpf-harness"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]


def timed(argv: list[str], cwd: Path | None = None) -> tuple[float, int, str]:
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=7200)
    return time.monotonic() - t0, p.returncode, (p.stdout + p.stderr)[-2000:]


def objects(n: int, kernels: list, cfg) -> list[Path]:
    """The first n compiled objects of the bundled libbpf programs."""
    subs = subjects_for_suite(None, kernels, cfg)
    objs = [Path(s.task["object"]) for s in subs if s.task.get("kind") == "program"
            and s.task.get("object")]
    return objs[:n]


def baseline(vmlinuz: Path, objs: list[Path], accel: str, cpus: int,
             workdir: Path) -> tuple[float, int, float | None]:
    """The hand-written run: the harness's vng command line (same options, same process
    handling), bpftool on each object. Returns wall seconds, objects loaded, and the guest
    uptime when the command started."""
    vng = tools.which("vng")
    script = (f"cat /proc/uptime > {workdir}/uptime; mount -t bpf bpf /sys/fs/bpf 2>/dev/null; "
              "ok=0; " + " ".join(
                  f"bpftool prog loadall {o} /sys/fs/bpf/o{i} >/dev/null 2>&1 && ok=$((ok+1));"
                  for i, o in enumerate(objs)) + f" echo $ok > {workdir}/loaded")
    # in a file: a long command goes on the kernel command line, and past its 2 KiB limit
    # the kernel panics at boot
    (workdir / "bench.sh").write_text(script + "\n")
    argv = vng_argv(vng, vmlinuz, workdir, ["sh", str(workdir / "bench.sh")], accel=accel,
                    cpus=cpus, name="bench")
    env = dict(os.environ, PATH=f"{Path(vng).parent}:{os.environ.get('PATH', '')}")
    t0 = time.monotonic()
    with open(workdir.parent / f"{workdir.name}.console.log", "wb") as console:
        proc = tools.popen(argv, stdout=console, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        supervise(proc, 900)
    took = time.monotonic() - t0

    def read(name: str) -> str:
        p = workdir / name
        return p.read_text().strip() if p.exists() else ""

    up = read("uptime").split()
    return took, int(read("loaded") or 0), float(up[0]) if up else None


def run_json(argv: list[str], out: Path, cwd: Path | None = None) -> tuple[float, int, dict]:
    took, rc, tail = timed([*argv, "--json", str(out)], cwd)
    data = json.loads(out.read_text()) if out.exists() else {}
    if not data:
        print(tail, file=sys.stderr)
    return took, rc, data


def cells(data: dict) -> str:
    """Cells as expected / all, as the results model counts them."""
    if not data:
        return "no results"
    ok, total = Report.from_dict(data).counts()
    return f"{ok}/{total}"


def compare_jobs(out: dict, key: str, label: str, args: list[str], jobs: tuple[str, str],
                 tmp: Path) -> None:
    """The same matrix command with two -j values, one after the other; their speed-up."""
    for j in jobs:
        took, rc, data = run_json([*harness_exe(), "matrix", "-q", *args, "-j", j],
                                  tmp / f"{key}-{j}.json", REPO)
        out[f"{key}_j{j}_s"] = round(took, 1)
        out[f"{key}_j{j}_run"] = data.get("run", {})
        print(f"{label}, -j {j}: {took:.0f}s (exit {rc}, {cells(data)} as expected, "
              f"{data.get('run', {})})", flush=True)
    first, second = jobs
    speedup = round(out[f"{key}_j{first}_s"] / out[f"{key}_j{second}_s"], 2)
    out[f"{key}_speedup_j{second}"] = speedup
    print(f"-j {second} speed-up, {label}: {speedup:.2f}x", flush=True)


def arm64_side_by_side(out: dict, lines: list[str], cfg, tmp: Path) -> None:
    """Each line's suite on x86_64 and on arm64, one VM at a time: wall, boot, VM time."""
    from harness.kernels.mirror import resolve_mirrors
    from harness.vm import guestroot

    t0 = time.monotonic()
    root = guestroot.ensure(cfg, guestroot.RootSpec("arm64", resolve_mirrors(cfg)[0]))
    out["arm64_root"] = {"name": root.spec.name, "load_s": round(time.monotonic() - t0, 2),
                         "packages": len(root.packages)}
    print(f"arm64 guest root {root.spec.name}: {len(root.packages)} packages, from the cache "
          f"in {time.monotonic() - t0:.2f}s", flush=True)
    for line in lines:
        for kid in (line, f"{line}/arm64"):
            took, rc, data = run_json([*harness_exe(), "matrix", "-q", "-j", "1", "-k", kid],
                                      tmp / f"arm64-{kid.replace('/', '_')}.json", REPO)
            k = (data.get("kernels") or [{}])[0]
            out.setdefault("arm64_side_by_side", {})[kid] = {
                "wall_s": round(took, 1), "boot_s": k.get("boot_seconds"),
                "vm_s": k.get("vm_seconds"), "cells": cells(data)}
            print(f"{kid:>11}: suite {took:6.1f}s wall, boot {k.get('boot_seconds')}s, VM "
                  f"{k.get('vm_seconds')}s, {cells(data)} as expected (exit {rc})", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default="5.10,6.12", help="kernel ids, comma-separated")
    ap.add_argument("--objects", type=int, default=15, help="how many bundled objects")
    ap.add_argument("--slice", action="store_true",
                    help="networking programs on --kernels with -j 1 and -j 2")
    ap.add_argument("--matrix", action="store_true",
                    help="the default matrix with -j 1 and -j auto (long under TCG)")
    ap.add_argument("--plugin", action="store_true", help="a pytest file through the plugin")
    ap.add_argument("--arm64", metavar="LINES", default="",
                    help="the suite on these lines and on their arm64 builds, side by side")
    ap.add_argument("--json", type=Path, default=Path("bench.json"))
    args = ap.parse_args()

    cfg = load_config(REPO)
    kernels = prepare_kernels(args.kernels, cfg, Progress(quiet=True))
    accel = choose_accel(cfg.accel)
    lone = choose(accel, 1, host_cores(), available_memory_mb(), memory_mb(cfg.memory))
    objs = objects(args.objects, kernels, cfg)
    out: dict = {"machine": {"cores": host_cores(), "cpu": _cpu_model(), "accel": accel,
                             "python": platform.python_version()},
                 "objects": len(objs), "kernels": {}}
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    for k in kernels:
        with tempfile.TemporaryDirectory(prefix="bench-raw-") as td:
            raw, loaded, raw_up = baseline(k.vmlinuz, objs, accel, lone.cpus, Path(td))
        took, rc, data = run_json([*harness_exe(), "check", "-k", k.id, "-q",
                                   *map(str, objs)], tmp / f"check-{k.id}.json")
        ready = (data.get("kernels") or [{}])[0].get("ready_seconds")
        row = {"release": k.release, "baseline_s": round(raw, 1), "baseline_loaded": loaded,
               "check_s": round(took, 1), "check_exit": rc, "ratio": round(took / raw, 2),
               "baseline_command_uptime_s": raw_up, "first_check_uptime_s": ready}
        out["kernels"][k.id] = row
        later = f"{ready - raw_up:+.1f}s" if ready is not None and raw_up is not None else "?"
        print(f"{k.id:>6}: baseline (vng + bpftool, {loaded}/{len(objs)} loaded) {raw:6.1f}s   "
              f"check {took:6.1f}s (exit {rc})   ratio {took / raw:.2f}   first check {later} "
              f"after the baseline's command (guest time)", flush=True)
    if args.slice:
        compare_jobs(out, "slice", f"networking on {args.kernels}",
                     ["-k", args.kernels, "--programs", "networking/*"], ("1", "2"), tmp)
    if args.matrix:
        compare_jobs(out, "matrix", "default matrix", [], ("1", "auto"), tmp)
    if args.arm64:
        arm64_side_by_side(out, args.arm64.split(","), cfg, tmp)
    if args.plugin:
        (tmp / "test_bench_plugin.py").write_text(PLUGIN_TESTS)
        took, rc, tail = timed([str(REPO / ".venv" / "bin" / "python"), "-m", "pytest", "-q",
                                "-p", "no:cacheprovider", "--kernels", args.kernels,
                                str(tmp / "test_bench_plugin.py")], tmp)
        out["plugin_s"] = round(took, 1)
        print(f"plugin, 2 tests on {args.kernels}: {took:.0f}s (exit {rc}): "
              f"{tail.strip().splitlines()[-1] if tail.strip() else ''}", flush=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written: {args.json}")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
