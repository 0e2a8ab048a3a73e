"""The ebpf-harness command.

Exit status: 0 when every cell meets its expectation, 1 when any does not, 2 for usage or
set-up errors (which are printed as one clear message, never a traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import Config, load_config
from .errors import HarnessError
from .report.progress import Progress
from .report.terminal import render_matrix
from .results import Report


def _common(p: argparse.ArgumentParser, kernels: bool = True) -> None:
    if kernels:
        p.add_argument("--kernels", "-k", help="kernel ids: lines (6.12), sets (default, all), "
                       "exact releases, or paths to a bzImage (default: the 'default' set)")
    p.add_argument("--json", type=Path, help="write the versioned results model here")
    p.add_argument("--mirror", help="Debian archive URL (default: from the host's apt sources)")
    p.add_argument("--security-mirror", help="Debian security archive URL")
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], help="VM acceleration")
    p.add_argument("-j", "--jobs", type=int, help="kernels booted in parallel")
    p.add_argument("--memory", help="guest memory (default 2G)")
    p.add_argument("--vm-timeout", type=float, help="seconds one VM may run")
    p.add_argument("--check-timeout", type=float, help="seconds one check may run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="ebpf-harness",
        description="Check eBPF programs against real kernels: verifier, attach, behaviour.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    kp = sub.add_parser("kernels", help="list, fetch or prune cached kernels")
    ksub = kp.add_subparsers(dest="kcmd", required=True)
    kl = ksub.add_parser("list", help="catalog lines, sets and cached kernels")
    _common(kl, kernels=False)
    kf = ksub.add_parser("fetch", help="download and verify kernels")
    kf.add_argument("ids", nargs="+")
    _common(kf, kernels=False)
    kpr = ksub.add_parser("prune", help="remove cached kernels not in --keep, and leftovers")
    kpr.add_argument("--keep", default="", help="kernel ids to keep (resolved like --kernels)")
    _common(kpr, kernels=False)

    cp = sub.add_parser("check", help="load, verify and attach every program of objects")
    cp.add_argument("paths", nargs="+", help=".bpf.o objects or .bpf.c sources")
    _common(cp)

    rp = sub.add_parser("run", help="run a command as root inside each kernel")
    rp.add_argument("--alive", type=float, help="pass when still running after this many "
                    "seconds (a tracer that attached); then stop it with SIGINT")
    rp.add_argument("--network", action="store_true", help="give the guest a network")
    rp.add_argument("--timeout", type=float, default=600.0, help="seconds the command may run")
    rp.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    _common(rp)

    mp = sub.add_parser("matrix", help="the bundled program suite on every kernel")
    mp.add_argument("--programs", help="glob(s) over program ids, e.g. 'security/*'")
    _common(mp)

    rep = sub.add_parser("report", help="print the matrix of a saved results file")
    rep.add_argument("results", type=Path, nargs="+", help="results JSON files (merged)")
    return ap


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config()
    return cfg.with_overrides(
        mirror=getattr(args, "mirror", None),
        security_mirror=getattr(args, "security_mirror", None),
        accel=getattr(args, "accel", None),
        jobs=getattr(args, "jobs", None),
        memory=getattr(args, "memory", None),
        vm_timeout=getattr(args, "vm_timeout", None),
        check_timeout=getattr(args, "check_timeout", None),
    )


def _finish(report: Report, args: argparse.Namespace) -> int:
    if args.json:
        report.write(args.json)
    sys.stdout.write(render_matrix(report))
    if args.json:
        print(f"results written to {args.json}")
    if report.interrupted:
        return 130
    return 0 if report.ok else 1


def cmd_kernels(args: argparse.Namespace, cfg: Config, progress: Progress) -> int:
    from .kernels.catalog import load_catalog, parse_kernel_ids
    from .kernels.fetch import installed_trees, prepare, prune

    catalog = load_catalog(cfg.catalog)
    if args.kcmd == "list":
        print("lines:")
        for e in catalog.lines():
            print(f"  {e.line:<6} suites: {', '.join(e.suites):<32} {e.note}")
        print("sets:")
        for name, members in sorted(catalog.sets.items()):
            print(f"  {name:<8} {', '.join(members)}")
        trees = installed_trees(cfg)
        print(f"cached in {cfg.cache_dir / 'kernels'}:" if trees else "cached: none")
        for t in trees:
            print(f"  {t['release']:<28} {t['suite']:<20} {t['version']}")
        return 0
    if args.kcmd == "fetch":
        for req in parse_kernel_ids(args.ids, catalog):
            k = prepare(req, catalog, cfg, progress=progress.download)
            print(f"{req.id}: {k.release} from {k.origin} -> {k.root}")
        return 0
    keep: set[str] = set()
    if args.keep:
        for req in parse_kernel_ids(args.keep, catalog):
            keep.add(prepare(req, catalog, cfg, progress=progress.download).release)
    removed = prune(cfg, keep)
    print(f"removed {len(removed)} kernel(s)" + (f": {', '.join(removed)}" if removed else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args, list(argv) if argv is not None else sys.argv[1:])
    except HarnessError as e:
        print(f"ebpf-harness: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ebpf-harness: interrupted", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace, argv: list[str]) -> int:
    from . import session

    if args.cmd == "report":
        report = Report()
        for p in args.results:
            report.merge(Report.read(p))
        sys.stdout.write(render_matrix(report))
        return 0 if report.ok else 1
    cfg = _config(args)
    progress = Progress(quiet=args.quiet)
    if args.cmd == "kernels":
        return cmd_kernels(args, cfg, progress)
    if args.cmd == "run":
        cmd = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        subject = session.subject_for_command(cmd, args.alive, args.network, args.timeout)
    kernels = session.prepare_kernels(args.kernels, cfg, progress)
    if args.cmd == "check":
        subjects = session.subjects_for_paths(args.paths, kernels, cfg)
    elif args.cmd == "matrix":
        subjects = session.subjects_for_suite(args.programs, kernels, cfg)
    else:
        subjects = [subject]
    report = session.execute(kernels, subjects, cfg, progress, command=["ebpf-harness", *argv])
    return _finish(report, args)


if __name__ == "__main__":
    sys.exit(main())
