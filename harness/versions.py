"""Kernel versions and Debian package versions, compared as versions, never as strings.

Kernel versions (major.minor.patch) are the harness's own; Debian package versions are
compared by python-debian (dpkg's algorithm).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from .errors import ConfigError

_KVER = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


@total_ordering
@dataclass(frozen=True)
class KernelVersion:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> KernelVersion:
        """Parse '6.12', '6.12.107', '6.12.107+deb13-amd64', '5.10.0-32-amd64', 'v7.3-rc2'."""
        m = _KVER.match(text)
        if not m:
            raise ConfigError(f"'{text}' is not a kernel version (expected e.g. 6.1 or 6.12.94)")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    def _key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, KernelVersion):
            return NotImplemented
        return self._key() < other._key()

    @property
    def line(self) -> str:
        return f"{self.major}.{self.minor}"

    def below_line(self, other: KernelVersion) -> bool:
        """Older than other's release line, compared on major.minor: 5.10.223 is not below
        5.10, 5.10.223 is below 5.17.0."""
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


_CONSTRAINT_VERSION = re.compile(r"^v?\d+\.\d+(?:\.\d+)?$")
_RANGE = re.compile(r"^\s*(>=|<=|==|!=|>|<|=)?\s*(\S+)\s*$")


@dataclass(frozen=True)
class VersionConstraint:
    op: str
    version: KernelVersion
    # "6.1" given without a patch level compares on major.minor only, so "<6.1"
    # excludes every 6.1.x and "==6.12" matches every 6.12.x.
    line_only: bool

    @classmethod
    def parse(cls, text: str) -> VersionConstraint:
        m = _RANGE.match(text)
        if not m:
            raise ConfigError(f"'{text}' is not a version constraint (e.g. '>=6.1', '<7.0')")
        op = m.group(1) or "=="
        if op == "=":
            op = "=="
        if not _CONSTRAINT_VERSION.match(m.group(2)):  # a release string is no constraint
            raise ConfigError(f"'{text}' is not a version constraint: give a kernel line or "
                              "version after the operator (e.g. '>=6.1', '<7.0', '==6.12.94')")
        ver = KernelVersion.parse(m.group(2))
        line_only = m.group(2).lstrip("v").count(".") == 1
        return cls(op, ver, line_only)

    def matches(self, v: KernelVersion) -> bool:
        a = (v.major, v.minor) if self.line_only else (v.major, v.minor, v.patch)
        b = (
            (self.version.major, self.version.minor)
            if self.line_only
            else (self.version.major, self.version.minor, self.version.patch)
        )
        return {
            ">=": a >= b,
            "<=": a <= b,
            ">": a > b,
            "<": a < b,
            "==": a == b,
            "!=": a != b,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.op}{self.version.line if self.line_only else self.version}"


def matches_all(constraints: list[VersionConstraint], v: KernelVersion) -> bool:
    return all(c.matches(v) for c in constraints)


# --- Debian package versions -------------------------------------------------------------


def compare_debian_versions(a: str, b: str) -> int:
    """Negative, zero or positive as Debian version a sorts before, equal to or after b,
    in dpkg's order (python-debian's; a version that is not one raises ValueError)."""
    from debian.debian_support import version_compare  # host side only: guests import this module

    return version_compare(a, b)
