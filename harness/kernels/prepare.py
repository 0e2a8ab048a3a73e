"""A kernel request made bootable: the build the signed index gives now (resolve.py),
fetched and verified (index.py), extracted into the cache (trees.py); or a local image.
I/O. Builds pinned by a lock file are locked.py's.
"""

from __future__ import annotations

from ..config import Config
from ..errors import KernelError
from ..events import FetchListener
from ..versions import KernelVersion
from .catalog import Catalog, KernelRequest
from .debian import abi_of
from .index import Archive
from .layout import bzimage_release
from .model import KernelSpec
from .resolve import resolve
from .trees import TreeMeta, checked_image, extract, kernel_spec, read_meta


def prepare(
    req: KernelRequest,
    catalog: Catalog,
    config: Config,
    listener: FetchListener | None = None,
    with_headers: bool = True,
) -> KernelSpec:
    """Resolve a request to a verified, extracted, bootable kernel tree in the cache."""
    if req.kind == "local":
        return prepare_local(req)
    assert req.entry is not None
    archive = Archive(config, listener, req.id)
    build = resolve(req, catalog, archive.lists(req.entry.suites, req.arch), with_headers)
    cache, rel = archive.cache, build.release
    tree = cache.path("kernels", rel)
    with cache.lock(f"kernel-{rel}"):
        meta = read_meta(tree)
        if meta is not None and meta.built_from(build.names):
            meta = checked_image(cache, tree, meta)  # None when the image is damaged
        if meta is None or not meta.built_from(build.names):
            debs = [archive.deb(p) for p in build.packages]
            meta = extract(cache, tree, debs, TreeMeta(
                rel, build.image.version, build.image.suite, tuple(build.names), build.record()))
    common = f"linux-headers-{abi_of(rel, req.flavour)}-common" + ("-rt" if req.rt else "")
    return kernel_spec(req.id, tree, meta, common, arch=req.arch, rt=req.rt)


def prepare_local(req: KernelRequest) -> KernelSpec:
    """A kernel built elsewhere: a bzImage file, or a build tree holding one."""
    assert req.path is not None
    p = req.path
    if p.is_dir():
        image = p / "arch" / "x86" / "boot" / "bzImage"
        if not image.is_file():
            raise KernelError(
                f"kernel '{req.id}': {p} is a directory without arch/x86/boot/bzImage; "
                "build the kernel first (make bzImage) or give the image file"
            )
        rel = bzimage_release(image.read_bytes())
        # a local kernel is named by its release: a path makes a poor column or test id
        return KernelSpec(rel, rel, KernelVersion.parse(rel), image, None, p, None, f"local:{p}")
    rel = bzimage_release(p.read_bytes())
    root = p.parent.parent if p.parent.name == "boot" else None
    if root is not None and not (root / "lib" / "modules" / rel).is_dir():
        root = None
    return KernelSpec(rel, rel, KernelVersion.parse(rel), p, root, None, None, f"local:{p}")
