"""Reading what a prediction needs: a kernel's facts (its BTF and the names of its
kallsyms, taken out of its image once per release and cached; its config) and an object
as the loader sees it. Each is read once per process (a kernel's BTF parses in about half
a second)."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from ..bpfobj import btf as B
from ..bpfobj.btfext import core_relocations
from ..bpfobj.elf import read_object
from ..bpfobj.insns import load_code
from ..bpfobj.requirements import _map_types
from ..build.vmlinux import kernel_btf, kernel_symbols
from ..errors import ConfigError, KernelError
from ..kernels.cache import Cache
from ..kernels.model import KernelSpec
from .capabilities import Capabilities, capabilities
from .model import KernelFacts, ObjectModel

_lock = threading.Lock()


@lru_cache(maxsize=16)
def _parsed(btf_path: Path) -> tuple[B.BTF, Capabilities]:
    btf = B.parse(btf_path.read_bytes())
    return btf, capabilities(btf)


def kernel_facts(kernel: KernelSpec, cache: Cache) -> KernelFacts:
    """Raises KernelError when the kernel carries no BTF to read."""
    path = kernel_btf(kernel, cache)
    with _lock:
        try:
            btf, caps = _parsed(path)
        except B.BTFError as e:
            raise KernelError(f"kernel {kernel.id}: its BTF cannot be read ({e}); remove "
                              f"{path} and run again") from e
    try:
        found = kernel_symbols(kernel, cache)
    except (KernelError, OSError):
        found = None
    symbols = _symbols(found) if found is not None else None
    return KernelFacts(id=kernel.id, version=kernel.version, arch=kernel.arch, btf=btf,
                       caps=caps, config=kernel.config(), release=kernel.release,
                       symbols=symbols)


@lru_cache(maxsize=16)
def _symbols(path: Path) -> frozenset[str]:
    return frozenset(path.read_text().split())


@lru_cache(maxsize=256)
def _model(path: Path, mtime: float) -> ObjectModel:
    from elftools.elf.elffile import ELFFile

    info = read_object(path)
    relos = []
    weak: set[str] = set()
    kconfig: set[str] = set()
    kfuncs: set[str] = set()
    if info.btf is not None:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            ext = elf.get_section_by_name(".BTF.ext")
            if ext is not None:
                try:
                    relos = core_relocations(ext.data(), info.btf)
                except B.BTFError as e:
                    raise ConfigError(f"{path}: its .BTF.ext is damaged ({e}); rebuild it") from e
            symtab = elf.get_section_by_name(".symtab")
            for sym in symtab.iter_symbols() if symtab is not None else ():
                if sym["st_shndx"] == "SHN_UNDEF" and sym["st_info"]["bind"] == "STB_WEAK" \
                        and sym.name:
                    weak.add(sym.name)
        for sec in info.btf.named(".kconfig", B.DATASEC):
            kconfig |= {info.btf[m.type].name for m in sec.members}
        for sec in info.btf.named(".ksyms", B.DATASEC):
            kfuncs |= {info.btf[m.type].name for m in sec.members
                       if info.btf[m.type].kind == B.FUNC}
    maps = _map_types(info)
    return ObjectModel(info=info, code=load_code(path), relos=relos, kconfig=kconfig,
                       maps=maps, weak=weak, kfuncs=kfuncs)


def read_model(path: Path) -> ObjectModel:
    """An object as the loader sees it. Raises ConfigError for one that cannot be read."""
    try:
        return _model(path.resolve(), path.stat().st_mtime)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it: {e}") from e

