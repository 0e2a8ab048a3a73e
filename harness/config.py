"""Configuration: data only. Precedence: CLI flag > environment > pyproject > defaults.

Keys (pyproject ``[tool.ebpf-harness]``, environment ``EBPF_HARNESS_<KEY>``):

- ``mirror``           Debian archive URL (default: from the host's apt sources)
- ``security_mirror``  Debian security archive URL (default: from the host's apt sources)
- ``cache_dir``        default ``$XDG_CACHE_HOME/ebpf-harness``
- ``catalog``          directory of kernel catalog TOML files (default: the bundled kernels/,
                       see harness.paths)
- ``keyring``          OpenPGP keyring for the archive's InRelease
- ``accel``            auto | kvm | tcg
- ``jobs``             kernels booted in parallel: a number, or auto (the default: from the
                       cores, the accelerator and memory; see harness.vm.plan)
- ``cpus``             vCPUs per guest: a number, or auto (the default: the cores shared
                       among the guests booted at once, at most 2)
- ``memory``           guest memory, e.g. 2G
- ``vm_timeout``       seconds one VM may run (default: 300 + the checks' own timeouts)
- ``check_timeout``    seconds one check may run inside the guest
- ``hide_paths``       host paths hidden from the guest (e.g. ["/home", "/root/.ssh"]);
                       the host root is otherwise visible read-only inside every VM
- ``allow_expired_index``  suites whose signed index may be used after its Valid-Until
                       (a mirror known to lag), with a warning each time; default none
- ``stall_timeout``    seconds a guest may show no progress (no event, heartbeat or console
                       output) before it counts as hung (default 60 under TCG, 30 with KVM)
- ``root_cache``       true (default): the host root is mounted with 9p's loose cache in the
                       guest (harness.vm.shim; 1.5-3x faster imports and BCC compiles on
                       older kernels); false: virtme-ng's uncached mount
- ``kernels``          the kernels a command uses when given none (ids and sets, as
                       ``--kernels`` takes them; default: the ``default`` set)
- ``lock``             kernel lock file (``ebpf-harness kernels lock``); relative to the
                       pyproject.toml that names it. Default: ``kernels.lock`` beside the
                       project's pyproject.toml, when there is one
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .paths import data_dir
from .tomlkeys import check_keys

LOCK_NAME = "kernels.lock"  # found beside the project's pyproject.toml


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ebpf-harness"


@dataclass(frozen=True)
class Config:
    mirror: str | None = None
    security_mirror: str | None = None
    cache_dir: Path = Path()
    catalog: Path = data_dir() / "kernels"
    keyring: Path = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    accel: str = "auto"
    jobs: int = 0  # 0: auto
    memory: str = "2G"
    cpus: int = 0  # 0: auto
    vm_timeout: float = 0.0  # 0: boot allowance plus the sum of the checks' timeouts
    check_timeout: float = 180.0
    stall_timeout: float = 0.0  # 0: 60 s under TCG, 30 s with KVM
    index_max_age: float = 6 * 3600.0
    # host paths the guest must not read (the host root is shared read-only): an empty
    # read-only tmpfs is mounted over each inside the guest before any check runs
    hide_paths: tuple[str, ...] = ()
    # suites whose expired signed index (Valid-Until passed) is used anyway, with a warning
    allow_expired_index: tuple[str, ...] = ()
    lock: Path | None = None  # every command prepares exactly the builds this file pins
    root_cache: bool = True  # the guest caches the host root it reads (vm.shim)
    kernels: str = "default"  # the kernels when a command is given none (ids, sets)

    def with_overrides(self, **kw: Any) -> Config:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    def without_lock(self, drop: bool = True) -> Config:
        """This configuration with no lock file (--no-lock), when drop is true."""
        return replace(self, lock=None) if drop else self


_TYPES = {f.name: f.type for f in fields(Config)}
AUTO_KEYS = ("jobs", "cpus")  # a number, or "auto" (0)


def _coerce(key: str, value: Any, origin: str) -> Any:
    t = _TYPES[key]
    try:
        if t in ("Path", "Path | None"):
            return Path(str(value)).expanduser()
        if t == "int":
            if key in AUTO_KEYS and str(value).strip().lower() == "auto":
                return 0
            n = int(value)
            if key in AUTO_KEYS and n < 1:
                raise ValueError("give a positive number, or auto")
            return n
        if t == "float":
            return float(value)
        if t == "bool":
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("give true or false")
        if t == "tuple[str, ...]":  # a TOML list, or comma-separated in the environment
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(i).strip() for i in items if str(i).strip())
        return str(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{origin}: '{key}' has the wrong type ({value!r}): {e}") from e


def find_pyproject(start: Path) -> Path | None:
    for d in [start, *start.parents]:
        p = d / "pyproject.toml"
        if p.is_file():
            return p
    return None


def load_config(cwd: Path | None = None, env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {"cache_dir": default_cache()}
    pp = find_pyproject(cwd or Path.cwd())
    if pp is not None:
        try:
            data = tomllib.loads(pp.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{pp}: not valid TOML ({e}); fix the file") from e
        section = data.get("tool", {}).get("ebpf-harness", {})
        for key, value in section.items():
            k = key.replace("-", "_")
            if k in _TYPES:
                values[k] = _coerce(k, value, str(pp))
                if k == "lock":  # the project's file, wherever the command runs from
                    values[k] = pp.parent / values[k]
            else:
                check_keys({key: value}, _TYPES, str(pp), "tool.ebpf-harness")
    for k in _TYPES:
        ev = env.get(f"EBPF_HARNESS_{k.upper()}")
        if ev:
            values[k] = _coerce(k, ev, f"environment EBPF_HARNESS_{k.upper()}")
    if "lock" not in values and pp is not None and (pp.parent / LOCK_NAME).is_file():
        values["lock"] = pp.parent / LOCK_NAME
    if values.get("accel", "auto") not in ("auto", "kvm", "tcg"):
        raise ConfigError(f"accel must be auto, kvm or tcg, not {values['accel']!r}")
    return Config(**values)
