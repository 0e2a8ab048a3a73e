"""virtme-run as vng starts it, with the host root mounted with 9p's loose cache.

virtme-ng mounts the host's root in the guest over 9p without caching. Older kernels
then walk every path component over 9p on every lookup: on 5.10 under TCG a Python import
of pyroute2 took 41 s and each BCC compile (kernel headers found through include paths)
about 40 s. The guest reads the host root only, read-only, and nothing on the host changes
under it during a run, so caching it is safe: the mount gets cache=loose, and the one
writable directory (a separate mount) stays uncached.

vng runs `virtme-run` by name; the backend puts a directory holding this shim first on
vng's PATH (``install``). The shim edits virtme-ng's initramfs script in memory and runs
virtme-run's own main. A virtme-ng whose script reads differently is run unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT_MOUNT = "msize=524288 /dev/root"  # the root's 9p options in virtme-ng's init script
CACHED = "msize=524288,cache=loose /dev/root"
NAME = "virtme-run"


def cached_script(script: str) -> str | None:
    """virtme-ng's root mount script with the loose cache, or None when it reads
    differently than this shim knows."""
    if script.count(ROOT_MOUNT) != 1 or "cache=" in script:
        return None
    return script.replace(ROOT_MOUNT, CACHED)


def main() -> int:
    import virtme.mkinitramfs as mk

    script = getattr(mk, "_MOUNT_ROOT_HOST", None)
    patched = cached_script(script) if isinstance(script, str) else None
    if patched is not None:
        mk._MOUNT_ROOT_HOST = patched
    from virtme.commands.run import main as run

    sys.argv[0] = NAME
    return run()


def install(bindir: Path) -> Path:
    """bindir/virtme-run running this shim under this interpreter; returns bindir."""
    from ..fsio import write_atomic

    package_parent = Path(__file__).resolve().parent.parent.parent
    text = (f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(package_parent)!r})\n"
            "from harness.vm.shim import main\nsys.exit(main())\n")
    path = bindir / NAME
    if not path.exists() or path.read_text() != text:
        write_atomic(path, text.encode(), mode=0o755)
    return bindir


if __name__ == "__main__":
    sys.exit(main())
