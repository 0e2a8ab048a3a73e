"""Kernel sourcing: catalog ids -> verified Debian packages -> bootable kernel trees.

Pure: catalog.py (the catalog, kernel ids), debian.py (Release, Packages, relations and
gpgv's verdict, read with python-debian), resolve.py (request + package lists -> build),
lock.py (the lock file's model and format), layout.py (package layouts, bzImage headers).
I/O: mirror.py (which mirror: config, else apt sources), download.py (HTTP with its
limits), index.py (the signed index, cached), trees.py (extracted trees and their
record), prepare.py (request -> bootable tree), locked.py (lock files pinned and
prepared), prune.py, cache.py.
"""

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
