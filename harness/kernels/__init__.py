"""Kernel sourcing: catalog ids -> verified Debian packages -> bootable kernel trees."""

from .catalog import Catalog, CatalogEntry, load_catalog
from .model import KernelSpec

__all__ = ["Catalog", "CatalogEntry", "KernelSpec", "load_catalog"]
