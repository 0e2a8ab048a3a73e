"""Removing cached kernel trees and the leftovers of interrupted downloads, never what a
running harness uses. I/O.
"""

from __future__ import annotations

import shutil

from ..config import Config
from .cache import Cache
from .trees import installed_trees


def in_use_name(release: str) -> str:
    """The shared lock a run holds on a kernel tree while a VM boots from it."""
    return f"inuse-kernel-{release}"


def prune(config: Config, keep: set[str], dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Remove cached kernel trees whose release is not in keep, and leftovers of
    interrupted downloads. Never what a running harness uses: a tree a VM booted from is
    kept, and leftovers are kept while any other harness process is active.
    Returns (removed releases, releases kept because in use); with dry_run, what would be
    removed, and nothing is."""
    removed, busy = [], []
    cache = Cache(config.cache_dir)
    with cache.unused("active") as idle:
        if idle and not dry_run:
            cache.remove_partials()
            shutil.rmtree(cache.path("debs"), ignore_errors=True)
        for tree, meta in installed_trees(config.cache_dir):
            rel = meta.release
            if rel in keep:
                continue
            with cache.unused(in_use_name(rel)) as free:
                if not free:
                    busy.append(rel)
                    continue
                if not dry_run:
                    with cache.lock(f"kernel-{rel}"):
                        shutil.rmtree(tree, ignore_errors=True)
                removed.append(rel)
    return removed, busy
