"""The names the CLI and the runner import from here, kept while they do. New code
imports the modules that do the work (see kernels/__init__.py): prepare and relock here
take the older progress callback (label, done bytes, total bytes), such as
Progress.download, where those take an events listener.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config
from ..events import DownloadProgress, FetchEvent, FetchListener
from . import locked as _locked
from . import prepare as _prepare
from . import trees as _trees
from .catalog import Catalog, KernelRequest
from .lock import LockedKernel, LockFile
from .model import KernelSpec
from .prune import in_use_name, prune

__all__ = ["in_use_name", "installed_trees", "prepare", "prune", "relock"]

DownloadCallback = Callable[[str, int, int], None]  # (label, done bytes, total bytes)


def _downloads(progress: DownloadCallback | None) -> FetchListener | None:
    """A listener that passes download progress to an older callback."""
    if progress is None:
        return None

    def listener(ev: FetchEvent) -> None:
        if isinstance(ev, DownloadProgress):
            progress(ev.label, ev.done, ev.total)

    return listener


def prepare(req: KernelRequest, catalog: Catalog, config: Config,
            progress: DownloadCallback | None = None, with_headers: bool = True) -> KernelSpec:
    """prepare.prepare, with download progress to a (label, done, total) callback."""
    return _prepare.prepare(req, catalog, config, _downloads(progress), with_headers)


def relock(path: Path, ids: str | list[str] | None, catalog: Catalog, config: Config,
           progress: DownloadCallback | None = None,
           ) -> tuple[LockFile, list[LockedKernel], LockFile]:
    """locked.relock, with download progress to a (label, done, total) callback."""
    return _locked.relock(path, ids, catalog, config, _downloads(progress))


def installed_trees(config: Config) -> list[dict[str, Any]]:
    """Each cached tree's record as JSON, with its "path" (trees.installed_trees is typed)."""
    return [{**meta.to_json(), "path": str(tree)}
            for tree, meta in _trees.installed_trees(config.cache_dir)]
