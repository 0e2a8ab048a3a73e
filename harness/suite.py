"""The bundled program suite: programs/<domain>/<name>/program.toml declarations. Pure."""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .kernels.catalog import ARCHES
from .paths import data_dir
from .tomlkeys import check_keys
from .versions import KernelVersion

PROGRAMS_DIR = data_dir() / "programs"
DOMAINS = ("observability", "security", "networking")


@dataclass(frozen=True)
class ProgramDecl:
    id: str  # "observability/exec_trace"
    dir: Path
    domain: str
    description: str
    kind: str  # "libbpf" | "bcc" | "bpftrace"
    source: Path | None
    check: Path | None
    script: Path | None
    attach: str
    min_kernel: KernelVersion | None
    feature: str
    upstream: str
    boot_params: tuple[str, ...]
    network: bool
    kernel_config: tuple[str, ...] = ()  # e.g. ("CONFIG_FPROBE",): built in or as a module
    # where an architecture needs a newer kernel than min_kernel: arch -> (minimum, what)
    # ([arch.arm64] in program.toml: fentry needs BPF trampolines, 6.0 on arm64)
    arch_min: dict[str, tuple[KernelVersion, str]] = field(default_factory=dict)
    link: str = ""  # the BPF link type its check attaches with ('tcx'), for the prediction

    def minimum(self, arch: str = "amd64") -> tuple[KernelVersion | None, str]:
        """The declared minimum kernel on this architecture, and what sets it."""
        generic = (self.min_kernel, self.feature)
        if arch in self.arch_min and (self.min_kernel is None
                                      or self.arch_min[arch][0] > self.min_kernel):
            return self.arch_min[arch]
        return generic

    def unmet(self, version: KernelVersion, config: dict[str, str] | None,
              arch: str = "amd64") -> str | None:
        """Why this kernel cannot run the program by declaration, or None when it should.

        Below the declared minimum on this architecture (compared on major.minor), or
        built without a declared kernel option (when the kernel's config is known).
        """
        minimum, feature = self.minimum(arch)
        if minimum is not None and version.below_line(minimum):
            from .decision import below_minimum

            return below_minimum(feature or "a newer kernel", minimum.line, str(version))
        if config is not None:
            missing = [c for c in self.kernel_config if config.get(c) not in ("y", "m")]
            if missing:
                return f"kernel built without {', '.join(missing)}"
        return None


DECL_KEYS = frozenset({"domain", "description", "kind", "source", "check", "script", "attach",
                       "min_kernel", "feature", "upstream", "boot_params", "network",
                       "kernel_config", "arch", "link"})
ARCH_KEYS = ("min_kernel", "feature", "upstream")


def parse_decl(path: Path, root: Path) -> ProgramDecl:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    check_keys(data, DECL_KEYS, str(path))
    d = path.parent
    pid = str(d.relative_to(root))
    kind = data.get("kind", "libbpf")
    domain = data.get("domain", "")
    if domain not in DOMAINS:
        raise ConfigError(f"{path}: domain must be one of {', '.join(DOMAINS)}, not {domain!r}")

    def _file(key: str) -> Path | None:
        v = data.get(key)
        if not v:
            return None
        p = d / v
        if not p.is_file():
            raise ConfigError(f"{path}: {key} = {v!r}, but {p} does not exist")
        return p

    if kind == "libbpf" and not data.get("source"):
        raise ConfigError(f"{path}: a libbpf program needs 'source = \"<name>.bpf.c\"'")
    if kind == "bcc" and not data.get("script"):
        raise ConfigError(f"{path}: a bcc program needs 'script = \"<name>.py\"'")
    if kind == "bpftrace" and not data.get("script"):
        raise ConfigError(f"{path}: a bpftrace program needs 'script = \"<name>.bt\"'")
    if kind not in ("libbpf", "bcc", "bpftrace"):
        raise ConfigError(f"{path}: kind must be libbpf, bcc or bpftrace, not {kind!r}")
    mk = data.get("min_kernel")
    arch_min: dict[str, tuple[KernelVersion, str]] = {}
    check_keys(data.get("arch", {}), ARCHES, str(path), "arch")
    for arch, t in data.get("arch", {}).items():
        check_keys(t, ARCH_KEYS, str(path), f"arch.{arch}")
        if "min_kernel" not in t or not t.get("feature"):
            raise ConfigError(f"{path}: [arch.{arch}] needs min_kernel and feature (what "
                              "this architecture lacks before it, and the upstream commit)")
        arch_min[arch] = (KernelVersion.parse(str(t["min_kernel"])), str(t["feature"]))
    return ProgramDecl(
        id=pid,
        dir=d,
        domain=domain,
        description=data.get("description", ""),
        kind=kind,
        source=_file("source"),
        check=_file("check"),
        script=_file("script"),
        attach=data.get("attach", "auto"),
        min_kernel=KernelVersion.parse(str(mk)) if mk else None,
        feature=data.get("feature", ""),
        upstream=data.get("upstream", ""),
        boot_params=tuple(data.get("boot_params", [])),
        network=bool(data.get("network", False)),
        kernel_config=tuple(data.get("kernel_config", [])),
        arch_min=arch_min,
        link=str(data.get("link", "")),
    )


def discover(root: Path = PROGRAMS_DIR, pattern: str | None = None) -> list[ProgramDecl]:
    decls = []
    for f in sorted(root.glob("*/*/program.toml")):
        decl = parse_decl(f, root)
        if pattern and not any(fnmatch.fnmatch(decl.id, p.strip()) for p in pattern.split(",")):
            continue
        decls.append(decl)
    if pattern and not decls:
        known = ", ".join(d.id for d in discover(root)) or "none"
        raise ConfigError(f"no bundled program matches '{pattern}'; known: {known}")
    return decls
