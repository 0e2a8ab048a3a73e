"""Where the package's own files are, from a checkout or from an installed wheel.

The kernel catalog (``kernels/*.toml``) and the program suite (``programs/``) live at the
repository root, beside the package. A wheel or sdist carries them inside the package as
``harness/_data/`` (``setup.py`` copies them there when the package is built), because an
installed package has no repository next to it. ``data_dir()`` is the one answer to "where
is the bundled data"; the catalog default (config.py) and the suite (suite.py) ask it.

Plain paths, not ``importlib.resources`` traversables: clang, bpftool and the guest (which
reads the host's files over 9p) need real files, and a wheel is always installed unpacked.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED_DATA = PACKAGE_DIR / "_data"  # what setup.py's build step ships
CHECKOUT = PACKAGE_DIR.parent  # a plain checkout, or an editable install of one


def data_dir() -> Path:
    """The directory that holds ``kernels/`` and ``programs/``.

    An installed package's own copy when there is one; else the checkout the package sits
    in. When neither is there the installed location is returned, so that an error about a
    missing catalog or program names the place a correct installation has it.
    """
    if not INSTALLED_DATA.is_dir() and (CHECKOUT / "kernels").is_dir():
        return CHECKOUT
    return INSTALLED_DATA


def guest_pythonpath(cache_dir: Path) -> Path:
    """A directory for the guest python's PYTHONPATH that holds this package and nothing else.

    Not the package's parent: installed, that is a site-packages directory, and on the
    path of the guest's system python3 it would put every package of the user's
    environment ahead of Debian's (pip's pyroute2 instead of the python3-pyroute2 the
    checks are written against, extension modules built for another Python). A directory
    in the cache with one symlink, ``harness``, to the package, named after the package's
    location, so environments sharing a cache never swap each other's harness.
    """
    key = hashlib.sha256(str(PACKAGE_DIR).encode()).hexdigest()[:12]
    root = cache_dir / "guest-python" / key
    link = root / "harness"
    if link.is_symlink() and link.resolve() == PACKAGE_DIR:
        return root
    root.mkdir(parents=True, exist_ok=True)
    # made under a name of its own, then renamed over: concurrent runs and threads agree
    tmp = root / f".harness.{uuid.uuid4().hex}.tmp"
    tmp.symlink_to(PACKAGE_DIR, target_is_directory=True)
    tmp.replace(link)
    return root
