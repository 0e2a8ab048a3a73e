"""The ebpf-harness command.

Exit status: 0 when every cell meets its expectation, 1 when any does not, 2 for usage or
set-up errors (which are printed as one clear message, never a traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, inputs
from .config import Config, load_config
from .errors import ConfigError, HarnessError
from .report.diff import check_growth
from .report.diff import render_term as render_diff
from .report.outputs import Outputs, gate, write_outputs
from .report.progress import Progress
from .report.terminal import render_matrix
from .results import Report, write_text_atomic
from .vm.backend import LIVE, Stopped, kill_descendants, stop_on_signals

if TYPE_CHECKING:
    from .kernels.catalog import Catalog, KernelRequest
    from .kernels.lock import LockedRoot, LockFile
    from .kernels.model import KernelSpec
    from .kernels.trees import TreeMeta


def _arch_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", metavar="ARCH[,ARCH]", help="the kernels' lines built for these "
                   "architectures (amd64, arm64): '--arch arm64 -k 5.10,6.12' is 5.10/arm64 "
                   "and 6.12/arm64 (default: the host's)")


def kernel_ids(given: str | list[str] | None, arch: str | None, cfg: Config
               ) -> str | list[str] | None:
    """The kernel ids a command asked for, with --arch applied to its lines."""
    if not arch:
        return given
    from .kernels.catalog import expand_ids, load_catalog, parse_arches, with_arches

    catalog = load_catalog(cfg.catalog)
    return with_arches(expand_ids(given or cfg.kernels, catalog), parse_arches(arch), catalog)


def _run_options(p: argparse.ArgumentParser) -> None:
    """What check, run and matrix read: kernels, mirrors, the VMs, reports."""
    p.add_argument("--kernels", "-k", help="kernel ids: lines (6.12), columns of another "
                   "architecture or flavour (6.12/arm64, 6.12/rt, 6.12/arm64-rt), sets (default, "
                   "all), exact releases, or paths to a bzImage (default: [tool.ebpf-harness] "
                   "kernels, else the 'default' set)")
    _arch_option(p)
    _lock_options(p)
    p.add_argument("--json", type=Path, help="write the versioned results model here")
    _mirror_options(p)
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], help="VM acceleration")
    p.add_argument("-j", "--jobs", type=_count, metavar="N|auto",
                   help="kernels booted in parallel (default: auto, from the cores, the "
                        "accelerator and memory)")
    p.add_argument("--cpus", type=_count, metavar="N|auto",
                   help="vCPUs per guest (default: auto, the cores shared among the guests)")
    p.add_argument("--memory", help="guest memory (default 2G)")
    p.add_argument("--vm-timeout", type=float, help="seconds one VM may run")
    p.add_argument("--check-timeout", type=float, help="seconds one check may run")
    _quiet(p)
    _report_outputs(p)


def _mirror_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mirror", help="Debian archive URL (default: from the host's apt sources)")
    p.add_argument("--security-mirror", help="Debian security archive URL")


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def _count(text: str) -> int:
    """A positive number, or auto (0)."""
    if text.strip().lower() == "auto":
        return 0
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number, or auto")
    return n


def _lock_options(p: argparse.ArgumentParser, what: str = "use exactly") -> None:
    p.add_argument("--lock", type=Path, metavar="FILE", help=f"{what} the kernel builds this "
                   "lock file pins (default: kernels.lock beside pyproject.toml, if present)")
    p.add_argument("--no-lock", action="store_true", help="ignore any configured lock file")


def _report_outputs(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reports and the regression gate")
    g.add_argument("--md", type=Path, metavar="OUT", help="write the Markdown report here "
                   "(e.g. $GITHUB_STEP_SUMMARY)")
    g.add_argument("--html", type=Path, metavar="OUT", help="write the HTML report here")
    g.add_argument("--junit", type=Path, metavar="OUT", help="write JUnit XML here")
    g.add_argument("--baseline", type=Path, metavar="BASE.json",
                   help="compare with these results; the exit status is then the gate's: "
                        "1 when any cell got worse")
    g.add_argument("--max-insns-growth", type=float, metavar="PCT",
                   help="with --baseline: also fail when a program's verifier instruction "
                        "count grew by more than PCT percent")


def _bpftrace(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bpftrace", metavar="PATH", help="the bpftrace that runs .bt scripts in "
                   "the guest (default: bpftrace on the guest's PATH, the host's: Debian 12 "
                   "has 0.17); e.g. a newer static build")


def _bpftrace_path(args: argparse.Namespace, arch: str,
                   kernels: list[KernelSpec]) -> str | None:
    """--bpftrace, checked before any boot: an executable file (the guest sees the host's
    files) built for the architecture of the columns it runs in."""
    given = getattr(args, "bpftrace", None)
    if given is None:
        return None
    p = Path(given).resolve()
    if not p.is_file() or not os.access(p, os.X_OK):
        raise ConfigError(f"--bpftrace {given}: not an executable file; give the path of a "
                          "bpftrace binary (a static build runs in any guest)")
    why = inputs.executable_refusal(p, arch, [k.id for k in kernels])
    if why:
        raise ConfigError(f"--bpftrace {given}: {why}")
    return str(p)


def _predict_only(p: argparse.ArgumentParser) -> None:
    p.add_argument("--predict-only", action="store_true", help="no VM: each cell's verdict "
                   "predicted from its kernel's own BTF (a CO-RE break, a missing hook, "
                   "helper or type), in seconds; exit 1 when a cell expected to pass is "
                   "predicted to be refused")


def _per_program(p: argparse.ArgumentParser) -> None:
    p.add_argument("--per-program", action="store_true", default=None, help="the verdict "
                   "(exit status, counts, the gate) from each program's row of a checked "
                   "object instead of the object's row")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="ebpf-harness",
        description="Check eBPF programs against real kernels: verifier, attach, behaviour.",
    )
    ap.add_argument("--version", action="version", version=f"ebpf-harness {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    kp = sub.add_parser("kernels", help="list, fetch, lock or prune cached kernels")
    ksub = kp.add_subparsers(dest="kcmd", required=True)
    ksub.add_parser("list", help="catalog lines, sets and cached kernels")
    kf = ksub.add_parser("fetch", help="download and verify kernels")
    kf.add_argument("ids", nargs="*", help="kernel ids (default: [tool.ebpf-harness] "
                    "kernels, else the 'default' set; with a lock file, every kernel in it)")
    _arch_option(kf)
    _lock_options(kf)
    _mirror_options(kf)
    _quiet(kf)
    klk = ksub.add_parser("lock", help="pin kernels to their exact Debian builds in a lock file")
    klk.add_argument("ids", nargs="*", help="kernel ids (default: [tool.ebpf-harness] "
                     "kernels, else the 'default' set); other kernels already in the lock "
                     "file are kept")
    _arch_option(klk)
    klk.add_argument("-o", "--output", type=Path, default=Path("kernels.lock"),
                     help="the lock file (default: ./kernels.lock)")
    _mirror_options(klk)
    _quiet(klk)
    kpr = ksub.add_parser(
        "prune", help="remove cached kernels (all but the default kernels and the lock "
        "file's kernels, or all but --keep) and leftovers of interrupted downloads")
    kpr.add_argument("--keep", default="", help="kernel ids to keep instead, read like "
                     "--kernels (a line keeps its newest cached build); nothing is downloaded")
    kpr.add_argument("--dry-run", action="store_true", help="print what would be removed; "
                     "remove nothing")
    _lock_options(kpr, what="without --keep, keep")

    cp = sub.add_parser("check", help="load, verify and attach every program of objects")
    cp.add_argument("paths", nargs="+", help=".bpf.o objects, .bpf.c sources, or programs "
                    "with a libbpf skeleton inside")
    cp.add_argument("--setup", type=Path, metavar="FILE|DIR", help="the loader set-up: a "
                    "TOML file for every object, or a directory of NAME.setup.toml (default: "
                    "NAME.setup.toml beside each object)")
    _per_program(cp)
    _predict_only(cp)
    _bpftrace(cp)
    _run_options(cp)

    pp = sub.add_parser("predict", help="predict every program's verdict on each kernel from "
                        "that kernel's own BTF, no VM booted (check --predict-only)")
    pp.add_argument("paths", nargs="+", help=".bpf.o objects, .bpf.c sources, or programs "
                    "with a libbpf skeleton inside")
    pp.add_argument("--setup", type=Path, metavar="FILE|DIR", help="the loader set-up, as "
                    "for check")
    _per_program(pp)
    _run_options(pp)

    qp = sub.add_parser("requirements", help="what each program of objects needs from the "
                        "kernel, and its minimum kernel (no VM)")
    qp.add_argument("paths", nargs="+", help=".bpf.o objects, .bpf.c sources, or programs "
                    "with a libbpf skeleton inside")
    qp.add_argument("--json", type=Path, help="write {objects: [{path, programs: [...]}]} here")
    qp.add_argument("--kernels", "-k", help="also each program's verdict predicted from these "
                    "kernels' own BTF (fetched if need be; no VM), beside the table's minimum")
    _arch_option(qp)
    _lock_options(qp)
    _mirror_options(qp)

    rp = sub.add_parser("run", help="run a command as root inside each kernel")
    rp.add_argument("--alive", type=float, help="pass when still running after this many "
                    "seconds (a tracer that attached); then stop it with SIGINT")
    rp.add_argument("--network", action="store_true", help="give the guest a network")
    rp.add_argument("--timeout", type=float, default=600.0, help="seconds the command may run")
    rp.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    _run_options(rp)

    mp = sub.add_parser("matrix", help="the bundled program suite on every kernel")
    mp.add_argument("--programs", help="glob(s) over program ids, e.g. 'security/*'")
    _predict_only(mp)
    _bpftrace(mp)
    _run_options(mp)

    rep = sub.add_parser("report", help="render, merge, compare saved results")
    rsub = rep.add_subparsers(dest="rcmd", required=True)
    rr = rsub.add_parser("render", help="render results (several files are merged first)")
    rr.add_argument("results", type=Path, nargs="+", help="results JSON files")
    rr.add_argument("--format", "-f", choices=REPORT_FORMATS, default="term")
    rr.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    rr.add_argument("--site", type=Path, metavar="DIR", help="write a static site: index.html, "
                    "report.html, results.json, badge.svg")
    _per_program(rr)
    rm = rsub.add_parser("merge", help="join the results of separate runs (one per kernel, say)")
    rm.add_argument("results", type=Path, nargs="+", help="results JSON files")
    rm.add_argument("-o", "--output", type=Path, required=True)
    rd = rsub.add_parser("diff", help="the regression gate: exit 1 when a cell got worse")
    rd.add_argument("base", type=Path, metavar="BASE.json")
    rd.add_argument("new", type=Path, metavar="NEW.json")
    rd.add_argument("--max-insns-growth", type=float, metavar="PCT",
                    help="also fail when a verifier instruction count grew by more than PCT%%")
    rd.add_argument("--format", "-f", choices=["term", "md"], default="term")
    _per_program(rd)
    rd.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    rs = rsub.add_parser("schema", help="print the JSON Schema of the results model")
    rs.add_argument("-o", "--output", type=Path)
    rb = rsub.add_parser("badge", help="write an SVG badge: cells as expected / all")
    rb.add_argument("results", type=Path, nargs="+")
    rb.add_argument("-o", "--output", type=Path, required=True)
    rb.add_argument("--label", default="ebpf")
    return ap


REPORT_FORMATS = ["term", "md", "html", "junit"]
REPORT_COMMANDS = ("render", "merge", "diff", "schema", "badge")


def _legacy(argv: list[str]) -> list[str]:
    """`report FILE...` (before `report render` existed) still renders the matrix."""
    if len(argv) >= 2 and argv[0] == "report" and argv[1] not in REPORT_COMMANDS \
            and not argv[1].startswith("-"):
        return ["report", "render", *argv[1:]]
    return argv


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config()
    return cfg.with_overrides(
        mirror=getattr(args, "mirror", None),
        security_mirror=getattr(args, "security_mirror", None),
        accel=getattr(args, "accel", None),
        jobs=getattr(args, "jobs", None),
        cpus=getattr(args, "cpus", None),
        memory=getattr(args, "memory", None),
        vm_timeout=getattr(args, "vm_timeout", None),
        check_timeout=getattr(args, "check_timeout", None),
        lock=getattr(args, "lock", None),
    ).without_lock(getattr(args, "no_lock", False))


def check_options(args: argparse.Namespace) -> None:
    """Options that need each other, and paths the user names: refused before anything
    is read, prepared or booted (ConfigError, exit 2)."""
    check_growth(getattr(args, "max_insns_growth", None),
                 args.cmd == "report" or getattr(args, "baseline", None) is not None)
    for option in ("json", "md", "html", "junit", "output"):
        inputs.output_file(getattr(args, option, None), "-o" if option == "output"
                           else f"--{option}")
    inputs.input_file(getattr(args, "baseline", None), "baseline results JSON")
    setup = getattr(args, "setup", None)
    if setup is not None and not setup.exists():
        raise ConfigError(f"--setup {setup}: no such file or directory; give a set-up TOML "
                          "file, or a directory of NAME.setup.toml files")
    for path in [*getattr(args, "results", []), getattr(args, "base", None),
                 getattr(args, "new", None)]:
        inputs.input_file(path, "results JSON")


def _outputs(args: argparse.Namespace) -> Outputs:
    return Outputs(json=args.json, md=args.md, html=args.html, junit=args.junit,
                   baseline=Report.read(args.baseline) if args.baseline else None,
                   max_insns_growth=args.max_insns_growth)


def _finish(report: Report, outs: Outputs) -> int:
    """Print the matrix, write the reports, apply the gate. Exit status: 130 when
    interrupted; with a baseline the gate's (1 when a cell got worse); otherwise 1 when a
    cell does not meet its expectation."""
    sys.stdout.write(render_matrix(report))
    for path in write_outputs(report, outs):
        print(f"written: {path}")
    result = gate(report, outs)
    if result is not None:
        sys.stdout.write("\n" + render_diff(result))
    if report.interrupted:
        print(f"ebpf-harness: stopped by {signal.Signals(LIVE.stop_signal).name}; every VM was "
              "killed and the results written are partial", file=sys.stderr)
        return 128 + LIVE.stop_signal
    if result is not None:
        return 1 if result.failed else 0
    return 0 if report.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from .report.diff import diff, render_md
    from .report.outputs import render
    from .results import merge, read_all, schema

    out: Path | None = getattr(args, "output", None)

    def emit(text: str) -> None:
        if out is None:
            sys.stdout.write(text)
        else:
            write_text_atomic(out, text)
            print(f"written: {out}", file=sys.stderr)

    if args.rcmd == "schema":
        emit(json.dumps(schema(), indent=2) + "\n")
        return 0
    if args.rcmd == "diff":
        base, new = Report.read(args.base), Report.read(args.new)
        if args.per_program is not None:
            base, new = base.view(True), new.view(True)
        d = diff(base, new, args.max_insns_growth)
        emit(render_md(d) if args.format == "md" else render_diff(d))
        return 1 if d.failed else 0
    if args.rcmd == "merge":
        merged = merge([(str(p), Report.read(p)) for p in args.results])
        merged.write(args.output)
        good, total = merged.counts()
        print(f"merged {len(args.results)} files: {len(merged.kernels)} kernels, {total} cells "
              f"({good} as expected) -> {args.output}")
        return 0
    report = read_all(args.results)
    if getattr(args, "per_program", None):
        report = report.view(per_program=True)
    if args.rcmd == "badge":
        from .report.badge import render_badge

        emit(render_badge(report, args.label))
        return 0 if report.ok else 1  # like render: the badge is written either way
    # like check and matrix: 1 when a cell does not meet its expectation
    status = 0 if report.ok else 1
    if args.site:
        from .report.html import write_site

        print(f"site written: {write_site(report, args.site)}")
        if out is None and args.format == "term":
            return status
    emit(render(report, args.format))
    return status


def cmd_requirements(args: argparse.Namespace) -> int:
    """No VM: read each object, list its programs' needs and minimum kernels."""
    from .bpfobj.requirements import render_requirements, requirements
    from .session import object_files

    cfg = _config(args)
    scripts = [p for p in args.paths if p.endswith(".bt")]
    objects = []
    for label, path in object_files([p for p in args.paths if p not in scripts], cfg):
        objects.append({"path": label, "object": str(path),
                        "programs": [p.to_dict() for p in requirements(path)]})
    out = {"objects": objects, "scripts": [_script_requirements(s) for s in scripts]}
    if objects:
        sys.stdout.write(render_requirements(objects))
    for sr in out["scripts"]:
        sys.stdout.write(_render_script(sr))
    if objects and (args.kernels or args.arch):
        sys.stdout.write(_predicted_requirements(args, cfg, objects))
    if args.json:
        write_text_atomic(args.json, json.dumps(out, indent=2) + "\n")
        print(f"written: {args.json}")
    return 0


def _script_requirements(path: str) -> dict[str, Any]:
    """A bpftrace script's probe types and builtins, each with what it needs of the kernel
    (the feature table's versions), and the highest of them: its minimum kernel."""
    from .bpfobj.requirements import _need, summarize
    from .bpftrace import script_needs

    inputs.inspect(path)  # a script, readable, its declaration well formed
    uses = script_needs(Path(path).read_text(errors="replace"))
    needs = list(dict.fromkeys(_need(kind, name) for _, kn in uses for kind, name in kn))
    top = summarize("script", "bpftrace", needs)
    return {"path": path, "min_kernel": top.min_kernel,
            "because": [n.describe() for n in top.because],
            "uses": [{"construct": c, "needs": [_need(k, n).describe() for k, n in kn]}
                     for c, kn in uses]}


def _render_script(sr: dict[str, Any]) -> str:
    lines = [f"{sr['path']} (bpftrace)",
             f"  min kernel {sr['min_kernel'] or '?'}: " + (", ".join(sr["because"]) or "—")]
    w = max([9, *(len(u["construct"]) for u in sr["uses"])])
    lines += [f"  {u['construct'].ljust(w)}  {', '.join(u['needs'])}" for u in sr["uses"]]
    return "\n".join(lines) + "\n\n"


def _predicted_requirements(args: argparse.Namespace, cfg: Config,
                            objects: list[dict[str, Any]]) -> str:
    """Each program's verdict predicted from each kernel's own BTF, added to objects (its
    'predicted': kernel id -> verdict and reason) and as text."""
    from .kernels.cache import Cache
    from .predict.facts import kernel_facts, read_model
    from .predict.model import predict_object
    from .session import prepare_kernels

    kernels = prepare_kernels(kernel_ids(args.kernels, args.arch, cfg), cfg,
                              Progress(quiet=True))
    facts = [kernel_facts(k, Cache(cfg.cache_dir)) for k in kernels]
    everywhere = frozenset().union(*(f.caps.functions for f in facts))
    lines = ["predicted from each kernel's own BTF (harness/predict):"]
    for obj in objects:
        model = read_model(Path(obj["object"]))
        per_kernel = {f.id: predict_object(model, f, elsewhere=everywhere) for f in facts}
        lines.append(f"{obj['path']}")
        for p in obj["programs"]:
            p["predicted"] = {kid: got[p["name"]].to_dict() for kid, got in per_kernel.items()
                              if p["name"] in got}
            said = "; ".join(f"{kid} {v['verdict']}" + (f" ({v['reason']})" if v["reason"]
                                                        else "")
                             for kid, v in p["predicted"].items())
            lines.append(f"  {p['name']}: {said}")
    return "\n".join(lines) + "\n"


def cmd_kernels(args: argparse.Namespace, cfg: Config, progress: Progress) -> int:
    from .kernels.catalog import load_catalog
    from .kernels.trees import installed_trees

    catalog = load_catalog(cfg.catalog)
    if args.kcmd == "list":
        print("lines:")
        for e in catalog.lines():
            print(f"  {e.line:<6} suites: {', '.join(e.suites):<32} {e.note}")
        print("sets:")
        for name, members in sorted(catalog.sets.items()):
            print(f"  {name:<8} {', '.join(members)}")
        trees = [meta for _, meta in installed_trees(cfg.cache_dir)]
        print(f"cached in {cfg.cache_dir / 'kernels'}:" if trees else "cached: none")
        for t in trees:
            print(f"  {t.release:<28} {t.suite:<20} {t.version}")
        return 0
    if args.kcmd == "fetch":
        from .session import prepare_kernels

        for k in prepare_kernels(kernel_ids(args.ids or None, args.arch, cfg), cfg, progress):
            print(f"{k.id}: {k.release} from {k.origin}{' (locked)' if k.pinned else ''} -> {k.root}")
        return 0
    if args.kcmd == "lock":
        from .kernels.locked import relock

        before, pinned, after = relock(args.output, kernel_ids(args.ids or None, args.arch, cfg),
                                       catalog, cfg,
                                       progress.event)
        for lk in after.kernels:
            old = before.get(lk.id)
            what = ("kept" if lk not in pinned else "new" if old is None
                    else "unchanged" if old == lk else f"was {old.release} {old.version}")
            print(f"{lk.id}: {lk.release} from {lk.origin} ({what})")
        for root in lock_guest_roots(args.output, after, cfg):
            print(f"guest root {root.arch}: Debian {root.suite}, {len(root.packages)} "
                  "packages pinned")
        print(f"lock file written to {args.output}")
        return 0
    return cmd_prune(args, cfg, catalog, [meta for _, meta in installed_trees(cfg.cache_dir)])


def lock_guest_roots(path: Path, lock: LockFile, cfg: Config) -> list[LockedRoot]:
    """The guest root of each foreign architecture among the locked kernels, built (or
    taken from the cache, as the archive gives it today) and pinned in the lock file."""
    from .kernels.catalog import release_flavour
    from .kernels.lock import LockedRoot, write_lock
    from .kernels.mirror import resolve_mirrors
    from .vm import guestroot

    arches = sorted({a for k in lock.kernels
                     if guestroot.is_foreign(a := release_flavour(k.release)[0])})
    roots = []
    for arch in arches:
        root = guestroot.ensure(cfg, guestroot.RootSpec(arch, resolve_mirrors(cfg)[0]))
        roots.append(LockedRoot(arch, root.spec.suite, tuple(sorted(root.packages.items()))))
        lock = lock.with_root(roots[-1])
    if roots:
        write_lock(path, lock)
    return roots


def cmd_prune(args: argparse.Namespace, cfg: Config, catalog: Catalog,
              trees: list[TreeMeta]) -> int:
    """Remove cached kernels but those kept: --keep, else the 'default' set and the lock
    file's kernels. Nothing is downloaded to decide (see keep_releases)."""
    from .kernels.catalog import parse_kernel_ids
    from .kernels.lock import read_lock
    from .kernels.prune import prune
    from .vm import guestroot

    if args.keep:
        keep = keep_releases(parse_kernel_ids(args.keep, catalog), trees, "--keep")
    else:
        why = "default set" if cfg.kernels == "default" else f"kernels = {cfg.kernels}"
        keep = keep_releases(parse_kernel_ids(cfg.kernels, catalog), trees, why)
        if cfg.lock is not None:
            for lk in read_lock(cfg.lock).kernels:
                keep.setdefault(lk.release, f"lock file {cfg.lock}: {lk.id}")
    cached = {t.release for t in trees}
    kept = [f"{rel} ({why})" for rel, why in sorted(keep.items()) if rel in cached]
    print("keeping " + (", ".join(kept) if kept else "no cached kernel"))
    removed, busy = prune(cfg, set(keep), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(removed)} kernel(s)" + (f": {', '.join(removed)}" if removed else ""))
    if busy:
        print(f"kept {len(busy)} kernel(s) a running VM uses: {', '.join(busy)}")
    try:
        current = {guestroot.spec_for(cfg, a).name for a in guestroot.MACHINES}
    except HarnessError:  # no mirror to name the current roots by: leave them all
        current = None
    stale = guestroot.stale_roots(cfg.cache_dir, current) if current is not None else []
    for root in stale:
        if not args.dry_run:
            guestroot.remove(root)
    if stale:
        print(f"{verb} {len(stale)} guest root(s) no run would boot on now: "
              f"{', '.join(r.name for r in stale)}")
    return 0


def keep_releases(requests: list[KernelRequest], trees: list[TreeMeta],
                  why: str) -> dict[str, str]:
    """release -> why it is kept, for prune, without downloading: an exact release is
    kept as such; a catalog line keeps its newest cached build (by Debian version: what
    `--kernels LINE` would boot unless the archive has a newer one); a local kernel is not
    in the cache. Pure."""
    from functools import cmp_to_key

    from .versions import KernelVersion, compare_debian_versions

    def newer_first(a: TreeMeta, b: TreeMeta) -> int:
        return compare_debian_versions(b.version, a.version)

    newest_first = sorted(trees, key=cmp_to_key(newer_first))
    out: dict[str, str] = {}
    for req in requests:
        if req.kind == "release" and req.release:
            out.setdefault(req.release, f"{why}: {req.id}")
        elif req.kind == "line" and req.entry is not None:
            line = req.entry.line
            for t in newest_first:
                if KernelVersion.parse(t.release).line == line:
                    out.setdefault(t.release, f"{why}: {req.id}")
                    break
    return out


def entry(early: list[int] | None = None) -> None:
    """The console script (after harness.entry): main(), then, after a stop signal, an
    exit that waits for nothing. The results are written by then; a kernel extraction or
    download still running in a worker thread (or its tool) must not hold the exit for
    its length. early: the signals harness.entry caught before this module loaded."""
    code = main(early=early if early is not None else [])
    if LIVE.stopping.is_set() or LIVE.pending is not None or code >= 128:
        LIVE.kill_all()
        kill_descendants()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def after_deferred_stop(code: int) -> int:
    """The exit status once the results are written: 128 + the signal when a stop came
    while they were being written (it waited for them)."""
    if LIVE.pending is None or code >= 128:
        return code
    print(f"ebpf-harness: stopped by {signal.Signals(LIVE.pending).name} while the results "
          "were written; they were written in full", file=sys.stderr)
    return 128 + LIVE.pending


def main(argv: Sequence[str] | None = None, early: list[int] | None = None) -> int:
    """early: a list the console script's first handler fills (harness.entry); its stop
    handler stays until the command knows where its results go. Without it (a call from
    Python), stop signals are handled from here."""
    raw = _legacy(list(argv) if argv is not None else sys.argv[1:])
    global _EARLY
    _EARLY = early
    if early is None and threading.current_thread() is threading.main_thread():
        stop_on_signals()
    try:
        args = build_parser().parse_args(raw)
        return after_deferred_stop(_main(args, raw))
    except HarnessError as e:
        print(f"ebpf-harness: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"ebpf-harness: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # `ebpf-harness ... | head`: the reader left, as SIGPIPE would
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # no flush error at exit
        return 128 + signal.SIGPIPE
    except Exception as e:  # a bug: a short message and where the traceback went
        log = _crash_log(raw)
        print(f"ebpf-harness: internal error: {type(e).__name__}: {e}. The traceback is in "
              f"{log}; please report it with that file.", file=sys.stderr)
        return 3


def _crash_log(argv: list[str]) -> Path:
    import tempfile
    import traceback

    from .config import default_cache

    d = default_cache() / "logs"
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        d = Path(tempfile.gettempdir())
    fd, name = tempfile.mkstemp(prefix="crash-", suffix=".log", dir=d)
    with open(fd, "w") as fh:
        fh.write(f"ebpf-harness {' '.join(argv)}\n\n{traceback.format_exc()}")
    return Path(name)


_EARLY: list[int] | None = None  # harness.entry's record of early stop signals


def _take_over_stops() -> None:
    """From here stop signals raise Stopped (or wait while results are written); the
    console script's early handler gives way, and what it caught is honoured by _main."""
    if _EARLY is not None and threading.current_thread() is threading.main_thread():
        stop_on_signals()


def _main(args: argparse.Namespace, argv: list[str]) -> int:
    from . import session

    if args.cmd == "predict":  # check --predict-only by its own name
        args.cmd, args.predict_only = "check", True
    if args.cmd not in ("check", "run", "matrix"):  # no results to write when stopped
        _take_over_stops()
        if _EARLY:
            raise Stopped(_EARLY[0])
    check_options(args)
    if args.cmd == "report":
        return cmd_report(args)
    if args.cmd == "requirements":
        return cmd_requirements(args)
    outs = _outputs(args) if args.cmd in ("check", "run", "matrix") else Outputs()
    _take_over_stops()
    cfg = _config(args)
    progress = Progress(quiet=getattr(args, "quiet", False))
    if args.cmd == "kernels":
        return cmd_kernels(args, cfg, progress)
    command = ["ebpf-harness", *argv]
    try:
        if _EARLY:  # a stop before this command could take it: honoured now
            raise Stopped(_EARLY[0])
        if args.cmd == "run":
            cmd = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            subject = session.subject_for_command(cmd, args.alive, args.network, args.timeout)
        if args.cmd == "check":  # bad input is refused before any kernel is prepared
            found = inputs.inspect_all(args.paths)
            if any(f.kind == inputs.SOURCE for f in found):
                inputs.check_sources(found, cfg.cache_dir / "objects",
                                     session.host_vmlinux(cfg))
        kernels = session.prepare_kernels(kernel_ids(args.kernels, args.arch, cfg), cfg,
                                          progress)
        if args.cmd == "check":
            subjects = session.by_arch(kernels, lambda ks, arch: session.subjects_for_paths(
                args.paths, ks, cfg, args.setup, arch, _bpftrace_path(args, arch, ks)))
            newest = max(kernels, key=lambda k: k.version) if kernels else None
            for s in session.each_subject(subjects):  # still before any VM boots
                if s.compile_error:
                    raise inputs.compile_refusal(
                        s.id, s.compile_error, f"the vmlinux.h of {newest.id}, the newest "
                        "kernel asked for" if newest else "no kernel BTF")
        elif args.cmd == "matrix":
            subjects = session.by_arch(kernels, lambda ks, arch: session.subjects_for_suite(
                args.programs, ks, cfg, arch=arch, bpftrace=_bpftrace_path(args, arch, ks)))
        else:
            subjects = [subject]
    except KeyboardInterrupt as e:
        # stopped while kernels were fetched or programs compiled: nothing ran, and the
        # reports say so (an interrupted run without cells)
        LIVE.stop_signal = signal.Signals(getattr(e, "signum", LIVE.stop_signal))
        LIVE.defer_stops()
        LIVE.kill_all()
        return _finish(Report(command=command, interrupted=True,
                              notes=["stopped before any kernel booted"]), outs)
    if getattr(args, "predict_only", False):
        report = session.predict(kernels, subjects, cfg, progress, command=command)
    else:
        report = session.execute(kernels, subjects, cfg, progress, command=command)
    if getattr(args, "per_program", False):
        report = report.view(per_program=True)
    return _finish(report, outs)


if __name__ == "__main__":
    entry()
