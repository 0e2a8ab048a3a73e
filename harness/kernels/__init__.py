"""Kernel sourcing: catalog ids -> verified Debian packages -> bootable kernel trees."""

from .catalog import Catalog, CatalogEntry, load_catalog
from .lock import LockedKernel, LockedPackage, LockFile, read_lock, write_lock
from .model import KernelSpec

__all__ = [
    "Catalog",
    "CatalogEntry",
    "KernelSpec",
    "LockFile",
    "LockedKernel",
    "LockedPackage",
    "load_catalog",
    "read_lock",
    "write_lock",
]
