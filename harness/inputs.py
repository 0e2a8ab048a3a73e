"""What the user gives `check` and `requirements`, refused before any kernel is resolved,
downloaded or booted when it cannot work. One rule, one place: the CLI checks its inputs
here first, and session._subjects (which turns them into subjects) reads them through the
same functions.

An input is a regular file and one of:

- a C source (``.c``), compiled later (`check_sources` compiles it once against this
  machine's BTF to refuse a source that no kernel's ``vmlinux.h`` could mend);
- a BPF ELF object (``e_machine == EM_BPF``) with at least one program: a section that
  holds code (SHF_EXECINSTR, not empty) other than ``.text``, which holds only
  subprograms;
- an ELF program that embeds such an object (a libbpf skeleton, e.g. /usr/sbin/execsnoop);
- a bpftrace script (``.bt``): text, with a well-formed declaration if it has one
  (harness/bpftrace.py).

A directory is an error that says to give the files; so is an output path (``--json``,
``-o``, ...) that is a directory. Each refusal is a ConfigError (a CompileError for a
source), one line naming the file, what is wrong and what to do.

Everything here is pure apart from reading the given files and, in `check_sources`,
running the compiler.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .build.skeleton import EM_BPF, embedded_objects
from .errors import CompileError, ConfigError

SOURCE, OBJECT, PROGRAM, SCRIPT = "source", "object", "program", "bpftrace"
SHF_EXECINSTR = 0x4
_ELF = b"\x7fELF"
_GIVE = ("give a compiled .bpf.o, a .bpf.c source, a program with a libbpf skeleton inside "
         "or a bpftrace script (.bt)")
# clang's first error when a type, field or name is missing: a newer kernel's vmlinux.h
# may have it, so such a source is refused only once the newest requested kernel's fails
_KERNEL_NAMES = ("unknown type name", "incomplete", "no member named", "undeclared",
                 "no field named", "unknown field")


@dataclass(frozen=True)
class Input:
    """A path that passed the checks, and what it is."""

    raw: str  # as given on the command line: the subject's label
    path: Path
    kind: str  # SOURCE | OBJECT | PROGRAM | SCRIPT
    objects: tuple[bytes, ...] = ()  # PROGRAM: the BPF objects it embeds


def inspect(raw: str) -> Input:
    """raw checked and classified; a ConfigError naming it when it cannot be checked."""
    p = Path(raw)
    if not p.exists():
        raise ConfigError(f"{raw}: no such file; {_GIVE}")
    if p.is_dir():
        raise ConfigError(f"{raw}: is a directory; give the files (e.g. "
                          f"{raw.rstrip('/')}/*.bpf.o)")
    if not p.is_file():
        raise ConfigError(f"{raw}: not a regular file; {_GIVE}")
    if p.suffix == ".c":
        return Input(raw, p, SOURCE)
    if p.suffix == ".bt":
        return _script(raw, p)
    try:
        with open(p, "rb") as fh:
            head = fh.read(512)
            data = head + fh.read() if head[:4] == _ELF else head
    except OSError as e:
        raise ConfigError(f"{raw}: cannot read it ({e.strerror or e}); check its "
                          "permissions") from e
    kind, objects, problem = classify(data)
    if problem:
        raise ConfigError(f"{raw}: {problem}")
    return Input(raw, p, kind, objects)


def _script(raw: str, p: Path) -> Input:
    """A bpftrace script: text, not empty, its declaration (if any) well formed."""
    from .bpftrace import read_declaration

    try:
        head = p.read_bytes()[:512]
    except OSError as e:
        raise ConfigError(f"{raw}: cannot read it ({e.strerror or e}); check its "
                          "permissions") from e
    if not head.strip():
        raise ConfigError(f"{raw}: is empty; give a bpftrace script")
    if not _is_text(head):
        raise ConfigError(f"{raw}: is not text, so not a bpftrace script")
    read_declaration(p)  # a wrong declaration is refused here, before any kernel
    return Input(raw, p, SCRIPT)


def inspect_all(paths: Sequence[str]) -> list[Input]:
    """Every path checked (the first bad one raised) before any of them is used."""
    return [inspect(raw) for raw in paths]


def classify(data: bytes) -> tuple[str, tuple[bytes, ...], str]:
    """(kind, embedded objects, problem) for a file's bytes (not a .c source); problem is
    "" when the file can be checked, else what is wrong and what to do. Pure."""
    if not data:
        return "", (), f"is empty; {_GIVE}"
    if data[:4] != _ELF:
        what = "a text file, not a BPF object" if _is_text(data[:512]) else "not an ELF file"
        return "", (), f"is {what}; {_GIVE}"
    header = _elf_header(data)
    if isinstance(header, str):
        return "", (), f"is a damaged ELF file ({header}); rebuild it, or {_GIVE}"
    machine, elf_type = header
    if machine in ("EM_BPF", EM_BPF):
        problem = _programs_problem(data)
        return OBJECT, (), (f"{problem}; {_GIVE}" if problem else "")
    objects = tuple(o for o in embedded_objects(data) if not _programs_problem(o))
    if objects:
        return PROGRAM, objects, ""
    if elf_type == "ET_REL":
        return "", (), (f"is an object file for {_machine(machine)}, not BPF; compile BPF "
                        "programs with clang -target bpf (or give the .bpf.c source)")
    return "", (), ("is an ELF program with no BPF object inside (a libbpf skeleton embeds "
                    "one); give its .bpf.o or .bpf.c instead")


def program_sections(data: bytes) -> list[str]:
    """The sections of a BPF object that hold programs: code (SHF_EXECINSTR), not empty,
    not .text (subprograms only, as libbpf reads it). Raises ValueError for a damaged ELF."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        return [s.name for s in elf.iter_sections()
                if s["sh_flags"] & SHF_EXECINSTR and s["sh_size"] > 0 and s.name != ".text"]
    except (ELFError, KeyError, ValueError, OSError) as e:  # pyelftools on truncated data
        raise ValueError(str(e) or type(e).__name__) from e


def _programs_problem(data: bytes) -> str:
    try:
        found = program_sections(data)
    except ValueError as e:
        return f"is a damaged BPF object ({e})"
    if not found:
        return ("is a BPF object with no programs (no function in a SEC(\"...\") section; "
                ".text holds subprograms only)")
    return ""


def _elf_header(data: bytes) -> tuple[str | int, str | int] | str:
    """(e_machine, e_type) as pyelftools names them, or why the header cannot be read."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        return elf["e_machine"], elf["e_type"]
    except (ELFError, KeyError, ValueError, OSError) as e:
        return str(e) or type(e).__name__


# Debian architecture -> the ELF machine its executables carry
_ARCH_MACHINE = {"amd64": "EM_X86_64", "arm64": "EM_AARCH64"}


def executable_refusal(path: Path, arch: str, columns: list[str]) -> str | None:
    """Why the ELF executable `path` cannot run in guests of Debian architecture `arch`
    (the columns named), or None: a script or an executable of that architecture."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as e:
        return f"{path}: cannot be read ({e.strerror or e})"
    if not head.startswith(b"\x7fELF"):
        return None  # a script: its interpreter is the guest's
    header = _elf_header(head)
    if isinstance(header, str):
        return None
    want = _ARCH_MACHINE.get(arch)
    if want is None or str(header[0]) == want:
        return None
    return (f"{path} is an {_machine(header[0])} executable; the {arch} columns "
            f"({', '.join(columns)}) cannot run it: give a build for {arch}, or leave the "
            "option out to use the bpftrace of that architecture's guest root")


def _machine(machine: str | int) -> str:
    names = {"EM_X86_64": "x86-64", "EM_386": "x86", "EM_AARCH64": "arm64", "EM_ARM": "arm",
             "EM_RISCV": "RISC-V", "EM_PPC64": "ppc64", "EM_S390": "s390"}
    return f"{names.get(str(machine), str(machine))} ({machine})"


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode()
    except UnicodeDecodeError:
        # a multi-byte character cut at the end of head is still text
        try:
            text = head[:-3].decode()
        except UnicodeDecodeError:
            return False
    return all(c.isprintable() or c in "\t\n\r\f" for c in text)


# -- sources --------------------------------------------------------------------------


def compile_refusal(raw: str, error: str, against: str) -> CompileError:
    """The one message for a source that does not compile: the file, clang's first error
    line, what it was compiled against and what to do."""
    first = error.split(" does not compile: ", 1)[-1].strip()
    return CompileError(f"{raw}: does not compile against {against}: {first}; fix the "
                        "source, or give the compiled .bpf.o")


def kernel_could_mend(first_error: str) -> bool:
    """Whether a newer kernel's vmlinux.h might make this error go away: the compiler
    missed a type, a field or a name (which the kernel's BTF may have). Pure."""
    text = first_error.lower()
    return any(k in text for k in _KERNEL_NAMES)


def check_sources(found: Sequence[Input], objects: Path, vmlinux: Path | None) -> None:
    """Compile each source once against vmlinux (this machine's BTF), before any kernel
    is prepared. A CompileError (see compile_refusal) for an error no kernel's vmlinux.h
    could mend; one about a missing type, field or name waits for the newest requested
    kernel's vmlinux.h (the source may use what only newer kernels have). Nothing is
    checked without vmlinux (no /sys/kernel/btf/vmlinux here)."""
    from .build.compile import compile_bpf

    if vmlinux is None:
        return
    for f in found:
        if f.kind != SOURCE:
            continue
        try:
            compile_bpf(f.path, objects, vmlinux)
        except CompileError as e:
            first = str(e).splitlines()[0]
            if not kernel_could_mend(first):
                raise compile_refusal(f.raw, first, "this machine's kernel BTF") from e


# -- other paths the user names ---------------------------------------------------------


def output_file(path: Path | None, option: str) -> None:
    """An output path must not be a directory (it would be replaced by a file)."""
    if path is not None and path.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; give a file path (e.g. "
                          f"{path / _example(option)})")


def input_file(path: Path | None, what: str) -> None:
    """A file the user names as input (a results JSON, a lock file): it exists, is a file."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give the {what} file")
    if not path.exists():
        raise ConfigError(f"{path}: no such file; give the {what} file")


def _example(option: str) -> str:
    return {"--json": "results.json", "--md": "report.md", "--html": "report.html",
            "--junit": "junit.xml"}.get(option, "out")
