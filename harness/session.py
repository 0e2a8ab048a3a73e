"""One harness run: kernels prepared, subjects built, VMs run, a Report assembled.

Used by the CLI and the pytest plugin alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from . import __version__, tools
from .bpfobj.elf import ObjectInfo
from .build.compile import HOST_ARCH, compile_bpf
from .build.vmlinux import vmlinux_header
from .config import Config
from .errors import CompileError, ConfigError
from .events import FetchListener, KernelFetchFailed, KernelReady, KernelResolving
from .kernels.cache import Cache
from .kernels.catalog import KernelRequest, load_catalog, parse_kernel_ids
from .kernels.download import CANCEL
from .kernels.lock import LockedKernel, read_lock
from .kernels.locked import prepare_locked
from .kernels.model import KernelSpec
from .kernels.prepare import prepare
from .orchestrator import Subject, run_kernels
from .report.progress import Progress
from .results import Report
from .suite import ProgramDecl, discover
from .vm.backend import Backend, VngBackend

FETCH_JOBS = 4  # kernels fetched and verified at once


def prepare_kernels(ids: str | list[str] | None, config: Config, progress: Progress,
                    lock: Path | None = None) -> list[KernelSpec]:
    """The kernels for ids (default: config.kernels, the 'default' set), ready to boot, fetched and
    verified side by side (the downloads wait on the network, the checksums on the disk).

    With a lock file (lock, else config.lock) exactly the builds it pins: every locked id
    when ids is None, else only ids present in it (another id is a ConfigError). Each
    step reaches progress as a typed event (events.KernelResolving, DownloadProgress,
    KernelReady, KernelFetchFailed).
    """
    catalog = load_catalog(config.catalog)
    Cache(config.cache_dir).hold_active()  # downloads in progress are not prune's leftovers
    lock = lock or config.lock
    listener = progress.event
    jobs: list[tuple[str, Callable[[], KernelSpec]]] = []
    starts: list[KernelResolving] = []
    if lock is not None:
        for lk in read_lock(lock).select(ids, catalog):
            def locked(lk: LockedKernel = lk) -> KernelSpec:
                return prepare_locked(lk, config, listener, lock_path=lock)
            jobs.append((lk.id, locked))
            starts.append(KernelResolving(lk.id, lk.release, lk.origin))
    else:
        for req in parse_kernel_ids(ids or config.kernels, catalog):
            def fetched(req: KernelRequest = req) -> KernelSpec:
                return prepare(req, catalog, config, listener)
            jobs.append((req.id, fetched))
            if req.kind != "local":
                starts.append(KernelResolving(req.id))
    for ev in starts:
        listener(ev)
    cache = Cache(config.cache_dir)
    with_btf: list[tuple[str, Callable[[], KernelSpec]]] = [
        (kid, partial(_with_btf, fn, cache)) for kid, fn in jobs]
    return _in_parallel(with_btf, listener, locked=lock is not None)


def _with_btf(prepare: Callable[[], KernelSpec], cache: Cache) -> KernelSpec:
    """The kernel prepare gives, its BTF and its symbols taken out of its image now (once
    per release, in the fetch workers), so that no later run spends the seconds:
    predictions read them before boots."""
    from .build.vmlinux import take_out

    kernel = prepare()
    if isinstance(kernel, KernelSpec):  # (a stand-in for one, in tests of the fetch plumbing)
        take_out(kernel, cache)
    return kernel


def _in_parallel(jobs: list[tuple[str, Callable[[], KernelSpec]]], listener: FetchListener,
                 locked: bool) -> list[KernelSpec]:
    """Every job's kernel, in the jobs' order; the first failure (in that order) is raised
    once all have ended, and Ctrl-C stops the downloads under way."""
    if not jobs:
        return []
    pool = ThreadPoolExecutor(max_workers=min(FETCH_JOBS, len(jobs)),
                              thread_name_prefix="fetch")
    futures = [pool.submit(fn) for _, fn in jobs]
    out: list[KernelSpec] = []
    try:
        for (kid, _), f in zip(jobs, futures, strict=True):
            try:
                k = f.result()  # a failure: the others not started are cancelled below
            except Exception as e:
                listener(KernelFetchFailed(kid, (str(e).splitlines() or [type(e).__name__])[0]))
                raise
            listener(KernelReady(kid, k.release, k.origin, locked))
            out.append(k)
    except KeyboardInterrupt:
        CANCEL.set()  # each download ends at its next chunk
        pool.shutdown(wait=False, cancel_futures=True)  # an extraction under way is not waited for
        raise
    pool.shutdown(wait=True)
    return out


def _vmlinux_for(kernels: list[KernelSpec], config: Config) -> Path:
    newest = max(kernels, key=lambda k: k.version)
    return vmlinux_header(newest, Cache(config.cache_dir))


Subjects = list[Subject] | dict[str, list[Subject]]  # the same for every kernel, or by id


def by_arch(kernels: list[KernelSpec],
            build: Callable[[list[KernelSpec], str], list[Subject]]) -> Subjects:
    """Subjects built once per architecture among the kernels (sources compiled for it,
    against its newest kernel's vmlinux.h): one list when they share one, else each
    kernel's own (orchestrator.run_kernels takes either)."""
    groups: dict[str, list[KernelSpec]] = {}
    for k in kernels:
        groups.setdefault(k.arch, []).append(k)
    if len(groups) <= 1:
        return build(kernels, next(iter(groups), HOST_ARCH))
    out: dict[str, list[Subject]] = {}
    for arch, ks in groups.items():
        subjects = build(ks, arch)
        out.update({k.id: subjects for k in ks})
    return out


def each_subject(subjects: Subjects) -> list[Subject]:
    """Every subject once, whichever form they come in."""
    if isinstance(subjects, list):
        return subjects
    seen: dict[int, Subject] = {}
    for ss in subjects.values():
        for s in ss:
            seen.setdefault(id(s), s)
    return list(seen.values())


def _one_per_id(subjects: list[Subject]) -> list[Subject]:
    """The first subject of each id (one built per architecture is one for the notes)."""
    first: dict[str, Subject] = {}
    for s in subjects:
        first.setdefault(s.id, s)
    return list(first.values())


def _compile(src: Path, kernels: list[KernelSpec], config: Config,
             vmlinux: Path | None = None, arch: str = HOST_ARCH
             ) -> tuple[Path | None, str | None]:
    if vmlinux is None and not kernels:
        return None, ("no kernel BTF to compile against (this machine has no "
                      "/sys/kernel/btf/vmlinux); give the compiled .bpf.o instead")
    try:
        vh = vmlinux or _vmlinux_for(kernels, config)
        return compile_bpf(src, config.cache_dir / "objects", vh, arch), None
    except CompileError as e:
        return None, str(e).splitlines()[0]


def _with_setup(subject: Subject, source: Path, setup: Path | None) -> Subject:
    """The object's set-up file (bpfobj/setup.py), resolved against the object, in its task."""
    from .bpfobj.elf import read_object
    from .bpfobj.setup import find_setup, load_setup, resolve

    found = find_setup(source, setup)
    obj = subject.task.get("path")
    info = None
    if found is not None and obj:
        info = read_object(Path(obj))  # read once: for the set-up and for the needs
        subject.task["setup"] = resolve(load_setup(found), info)
    return _with_needs(subject, obj, info)


def _with_needs(subject: Subject, obj: str | None, info: ObjectInfo | None = None) -> Subject:
    """What each program needs, read from the object, so that cells can be explained."""
    from .bpfobj.requirements import requirements

    if obj:
        # an object this cannot read may still load; its cells are then not explained
        with contextlib.suppress(ConfigError, OSError, ValueError):
            subject.needs = {p.name: p for p in requirements(Path(obj), info)}
    return subject


def object_files(paths: Sequence[str], config: Config) -> list[tuple[str, Path]]:
    """(label, compiled object) for each path, without kernels: a .bpf.c is compiled
    against the running kernel's BTF (a CompileError, inputs.compile_refusal, when it
    does not compile)."""
    from .inputs import compile_refusal, inspect_all

    inspect_all(paths)  # a bad path is refused before anything compiles
    out = []
    for label, s in _subjects(paths, [], config, vmlinux=host_vmlinux(config)):
        if s.compile_error:
            raise compile_refusal(label, s.compile_error, "this machine's kernel BTF")
        out.append((label, Path(s.task["path"])))
    return out


def host_vmlinux(config: Config) -> Path | None:
    btf = Path("/sys/kernel/btf/vmlinux")
    if not btf.exists():
        return None
    from .fsio import write_atomic

    dest = config.cache_dir / "objects" / "host-btf" / "vmlinux.h"
    if not dest.exists():
        out = tools.run(["bpftool", "btf", "dump", "file", str(btf), "format", "c"], timeout=120)
        write_atomic(dest, out.stdout)
    return dest


def subjects_for_paths(paths: Sequence[str], kernels: list[KernelSpec], config: Config,
                       setup: Path | None = None, arch: str = HOST_ARCH,
                       bpftrace: str | None = None) -> list[Subject]:
    """One subject per object (a source compiled for kernels of architecture arch); with
    setup (a file, or a directory of NAME.setup.toml), or a NAME.setup.toml beside the
    object, set up as its loader would. bpftrace: the binary that runs .bt scripts in the
    guest (default: the one on the guest's PATH, the host's)."""
    return [s if s.task.get("kind") == "bpftrace" else _with_setup(s, Path(raw), setup)
            for raw, s in _subjects(paths, kernels, config, arch=arch, bpftrace=bpftrace)]


def _subjects(paths: Sequence[str], kernels: list[KernelSpec], config: Config,
              vmlinux: Path | None = None, arch: str = HOST_ARCH,
              bpftrace: str | None = None) -> list[tuple[str, Subject]]:
    from .inputs import OBJECT, SCRIPT, SOURCE, inspect_all

    subjects = []
    for found in inspect_all(paths):  # every path checked (inputs.py) before any is used
        raw = label = found.raw
        if found.kind == SOURCE:
            obj, err = _compile(found.path, kernels, config, vmlinux, arch)
            task = {"kind": "object", "path": str(obj) if obj else ""}
            subjects.append((raw, Subject(label, task, compile_error=err, expands=True)))
        elif found.kind == SCRIPT:
            from .bpftrace import read_declaration, task_for

            decl = read_declaration(found.path)
            subjects.append((raw, Subject(label, task_for(found.path, decl, bpftrace),
                                          script=decl)))
        elif found.kind == OBJECT:
            subjects.append((raw, Subject(label, {"kind": "object",
                                                  "path": str(found.path.resolve())},
                                          expands=True)))
        else:  # a program with a libbpf skeleton inside
            for i, data in enumerate(found.objects):
                path = _store_object(data, config)
                name = label if len(found.objects) == 1 else f"{label}#{i}"
                subjects.append((raw, Subject(name, {"kind": "object", "path": str(path)},
                                              expands=True)))
    return subjects


def _store_object(data: bytes, config: Config) -> Path:
    """An embedded object as a file of its own in the cache, named by its content."""
    import hashlib

    from .fsio import write_atomic

    dest = config.cache_dir / "objects" / "embedded" / f"{hashlib.sha256(data).hexdigest()[:16]}.o"
    if not dest.exists():
        write_atomic(dest, data)
    return dest


def subject_for_decl(decl: ProgramDecl, kernels: list[KernelSpec], config: Config,
                     arch: str = HOST_ARCH, bpftrace: str | None = None) -> Subject:
    if decl.kind == "bpftrace":
        from .bpftrace import read_declaration, task_for

        assert decl.script is not None
        return Subject(decl.id, task_for(decl.script, read_declaration(decl.script), bpftrace),
                       decl=decl, network=decl.network, boot_params=decl.boot_params)
    if decl.kind == "bcc":
        task: dict[str, Any] = {"kind": "bcc", "script": str(decl.script), "cwd": str(decl.dir)}
        return Subject(decl.id, task, decl=decl, network=decl.network,
                       boot_params=decl.boot_params)
    assert decl.source is not None
    obj, err = _compile(decl.source, kernels, config, arch=arch)
    task = {"kind": "program", "object": str(obj) if obj else "",
            "check": str(decl.check) if decl.check else None, "attach": decl.attach}
    return _with_needs(Subject(decl.id, task, decl=decl, network=decl.network,
                               boot_params=decl.boot_params, compile_error=err),
                       task["object"])


def subjects_for_suite(pattern: str | None, kernels: list[KernelSpec], config: Config,
                       root: Path | None = None, arch: str = HOST_ARCH,
                       bpftrace: str | None = None) -> list[Subject]:
    decls = discover(root, pattern) if root else discover(pattern=pattern)
    return [subject_for_decl(d, kernels, config, arch, bpftrace) for d in decls]


def subject_for_command(argv: Sequence[str], alive: float | None, network: bool,
                        timeout: float) -> Subject:
    if not argv:
        raise ConfigError("run needs a command after '--', e.g. ebpf-harness run -- opensnoop-bpfcc")
    task = {"kind": "command", "argv": list(argv), "alive": alive, "cwd": str(Path.cwd()),
            "command_timeout": timeout, "timeout": timeout + 30}
    return Subject(" ".join(argv), task, network=network)


def declaration_notes(subjects: list[Subject]) -> list[str]:
    """Bundled programs whose declared minimum kernel disagrees with their object's."""
    from .bpfobj.requirements import check_declaration

    out = []
    for s in subjects:
        if s.decl is not None and s.needs:
            note = check_declaration(s.id, s.decl.min_kernel, s.decl.feature, s.needs)
            if note:
                out.append(note)
    return out


def host_loaders() -> dict[str, str]:
    out = {"harness": __version__}
    clang = tools.tool_version(["clang", "--version"])
    if clang:
        out["clang"] = clang.split("version")[-1].strip().split()[0]
    return out


def predict(kernels: list[KernelSpec], subjects: Subjects, config: Config, progress: Progress,
            command: Sequence[str] = ()) -> Report:
    """Every cell predicted from its kernel's own BTF, no VM booted (check --predict-only)."""
    from .orchestrator import predict_only

    runs = predict_only(kernels, subjects, config, progress.event)
    report = Report(command=list(command),
                    notes=declaration_notes(_one_per_id(each_subject(subjects))))
    report.loaders = host_loaders()
    for run in runs:
        report.kernels.append(run.info)
        report.results.extend(run.results)
    return report


def execute(
    kernels: list[KernelSpec],
    subjects: Subjects,
    config: Config,
    progress: Progress,
    backend: Backend | None = None,
    command: Sequence[str] = (),
    workdir: Path | None = None,
) -> Report:
    for group in ([subjects] if isinstance(subjects, list) else list(subjects.values())):
        seen: set[str] = set()
        for s in group:  # within a kernel: the same subject built per architecture is one
            if s.id in seen:
                raise ConfigError(f"{s.id} is given twice in one run; each subject (object, "
                                  "program, command) needs its own name")
            seen.add(s.id)
    backend = backend or VngBackend()
    workdir = workdir or Cache(config.cache_dir).new_run_dir()
    progress.note(f"run directory: {workdir}")
    runs, interrupted, plan = run_kernels(kernels, subjects, config, backend, workdir,
                                          progress.event)
    report = Report(command=list(command), interrupted=interrupted,
                    notes=declaration_notes(_one_per_id(each_subject(subjects))),
                    run=plan.to_dict())
    report.loaders = host_loaders()
    roots = {run.guest_root.spec.name: run.guest_root for run in runs if run.guest_root}
    if roots:  # what the foreign guests ran on, package by package
        report.run["guest_roots"] = {
            name: {"arch": r.spec.arch, "suite": r.spec.suite, "packages": r.packages}
            for name, r in roots.items()}
    for run in runs:
        report.kernels.append(run.info)
        report.results.extend(run.results)
        report.loaders.update(run.info.features.get("loaders", {}))
    return report
