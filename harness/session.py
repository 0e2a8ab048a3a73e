"""One harness run: kernels prepared, subjects built, VMs run, a Report assembled.

Used by the CLI and the pytest plugin alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import __version__, tools
from .build.compile import compile_bpf
from .build.skeleton import embedded_objects, is_bpf_object
from .build.vmlinux import vmlinux_header
from .config import Config
from .errors import CompileError, ConfigError
from .kernels.cache import Cache
from .kernels.catalog import load_catalog, parse_kernel_ids
from .kernels.fetch import prepare, prepare_locked
from .kernels.lock import read_lock
from .kernels.model import KernelSpec
from .report.progress import Progress
from .results import Report
from .runner import Subject, new_workdir, run_kernels
from .suite import ProgramDecl, discover
from .vm.backend import Backend, VngBackend


def prepare_kernels(ids: str | list[str] | None, config: Config, progress: Progress,
                    lock: Path | None = None) -> list[KernelSpec]:
    """The kernels for ids (default: the 'default' set), ready to boot.

    With a lock file (lock, else config.lock) exactly the builds it pins: every locked id
    when ids is None, else only ids present in it (another id is a ConfigError).
    """
    catalog = load_catalog(config.catalog)
    Cache(config.cache_dir).hold_active()  # downloads in progress are not prune's leftovers
    lock = lock or config.lock
    if lock is not None:
        locked = read_lock(lock)
        out = []
        for lk in locked.select(ids, catalog):
            progress.kernel(lk.id, "fetch", f"locked build {lk.release} ({lk.origin})")
            k = prepare_locked(lk, config, progress=progress.download, lock_path=lock)
            progress.kernel(lk.id, "ready", f"{k.release} ({k.origin}, locked)")
            out.append(k)
        return out
    reqs = parse_kernel_ids(ids or "default", catalog)
    out = []
    for req in reqs:
        if req.kind != "local":
            progress.kernel(req.id, "fetch", "resolving in the signed archive index")
        k = prepare(req, catalog, config, progress=progress.download)
        progress.kernel(req.id, "ready", f"{k.release} ({k.origin})")
        out.append(k)
    return out


def _vmlinux_for(kernels: list[KernelSpec], config: Config) -> Path:
    newest = max(kernels, key=lambda k: k.version)
    return vmlinux_header(newest, Cache(config.cache_dir))


def _compile(src: Path, kernels: list[KernelSpec], config: Config) -> tuple[Path | None, str | None]:
    try:
        vh = _vmlinux_for(kernels, config)
        return compile_bpf(src, config.cache_dir / "objects", vh), None
    except CompileError as e:
        return None, str(e).splitlines()[0]


def _with_setup(subject: Subject, source: Path, setup: Path | None) -> Subject:
    """The object's set-up file (bpfobj/setup.py), resolved against the object, in its task."""
    from .bpfobj.elf import read_object
    from .bpfobj.setup import find_setup, load_setup, resolve

    found = find_setup(source, setup)
    obj = subject.task.get("path")
    if found is not None and obj:
        subject.task["setup"] = resolve(load_setup(found), read_object(Path(obj)))
    return subject


def subjects_for_paths(paths: Sequence[str], kernels: list[KernelSpec], config: Config,
                       setup: Path | None = None) -> list[Subject]:
    """One subject per object; with setup (a file, or a directory of NAME.setup.toml),
    or a NAME.setup.toml beside the object, set up as its loader would."""
    return [_with_setup(s, Path(raw), setup) for raw, s in _subjects(paths, kernels, config)]


def _subjects(paths: Sequence[str], kernels: list[KernelSpec],
              config: Config) -> list[tuple[str, Subject]]:
    subjects = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise ConfigError(f"{raw}: no such file; give a compiled .bpf.o or a .bpf.c source")
        label = raw
        if p.suffix == ".c":
            obj, err = _compile(p, kernels, config)
            task = {"kind": "object", "path": str(obj) if obj else ""}
            subjects.append((raw, Subject(label, task, compile_error=err, expands=True)))
        elif p.suffix == ".o" or (head := _head(p)).startswith(b"\x7fELF"):
            if p.suffix == ".o" or is_bpf_object(head):
                subjects.append((raw, Subject(label, {"kind": "object", "path": str(p.resolve())},
                                              expands=True)))
                continue
            objs = embedded_objects(p.read_bytes())
            if not objs:
                raise ConfigError(f"{raw}: an ELF program with no BPF object inside (a libbpf "
                                  "skeleton embeds one); give its .bpf.o or .bpf.c instead")
            for i, data in enumerate(objs):
                path = _store_object(data, config)
                name = label if len(objs) == 1 else f"{label}#{i}"
                subjects.append((raw, Subject(name, {"kind": "object", "path": str(path)},
                                              expands=True)))
        else:
            raise ConfigError(f"{raw}: not a BPF object (.o), a C source (.c) or a program "
                              "with a BPF skeleton inside")
    return subjects


def _head(p: Path) -> bytes:
    with open(p, "rb") as fh:
        return fh.read(64)


def _store_object(data: bytes, config: Config) -> Path:
    """An embedded object as a file of its own in the cache, named by its content."""
    import hashlib

    from .fsio import write_atomic

    dest = config.cache_dir / "objects" / "embedded" / f"{hashlib.sha256(data).hexdigest()[:16]}.o"
    if not dest.exists():
        write_atomic(dest, data)
    return dest


def subject_for_decl(decl: ProgramDecl, kernels: list[KernelSpec], config: Config) -> Subject:
    common = {"decl": decl, "network": decl.network, "boot_params": decl.boot_params}
    if decl.kind == "bcc":
        task = {"kind": "bcc", "script": str(decl.script), "cwd": str(decl.dir)}
        return Subject(decl.id, task, **common)
    assert decl.source is not None
    obj, err = _compile(decl.source, kernels, config)
    task = {"kind": "program", "object": str(obj) if obj else "",
            "check": str(decl.check) if decl.check else None, "attach": decl.attach}
    return Subject(decl.id, task, compile_error=err, **common)


def subjects_for_suite(pattern: str | None, kernels: list[KernelSpec], config: Config,
                       root: Path | None = None) -> list[Subject]:
    decls = discover(root, pattern) if root else discover(pattern=pattern)
    return [subject_for_decl(d, kernels, config) for d in decls]


def subject_for_command(argv: Sequence[str], alive: float | None, network: bool,
                        timeout: float) -> Subject:
    if not argv:
        raise ConfigError("run needs a command after '--', e.g. ebpf-harness run -- opensnoop-bpfcc")
    task = {"kind": "command", "argv": list(argv), "alive": alive, "cwd": str(Path.cwd()),
            "command_timeout": timeout, "timeout": timeout + 30}
    return Subject(" ".join(argv), task, network=network)


def host_loaders() -> dict[str, str]:
    out = {"harness": __version__}
    clang = tools.tool_version(["clang", "--version"])
    if clang:
        out["clang"] = clang.split("version")[-1].strip().split()[0]
    return out


def execute(
    kernels: list[KernelSpec],
    subjects: list[Subject],
    config: Config,
    progress: Progress,
    backend: Backend | None = None,
    command: Sequence[str] = (),
    workdir: Path | None = None,
) -> Report:
    backend = backend or VngBackend()
    workdir = workdir or new_workdir(config)
    progress.note(f"run directory: {workdir}")
    runs, interrupted = run_kernels(kernels, subjects, config, backend, workdir, progress.event)
    report = Report(command=list(command), interrupted=interrupted)
    report.loaders = host_loaders()
    for run in runs:
        report.kernels.append(run.info)
        report.results.extend(run.results)
        report.loaders.update(run.info.features.get("loaders", {}))
    return report
