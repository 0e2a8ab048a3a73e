"""The one check of a TOML table's keys, for every file the harness reads (program.toml,
set-up files, [tool.ebpf-harness], the kernel catalog, the lock file). Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import ConfigError


def unknown_keys(table: Mapping[str, object], known: Iterable[str]) -> list[str]:
    """The keys of table that are not known, sorted: the one rule (a file whose messages
    have a shape of their own, such as the lock file's, words them itself)."""
    return sorted(set(table) - set(known))


def check_keys(table: object, known: Iterable[str], source: str, where: str = "") -> None:
    """Raise ConfigError when table is not a table, or naming its first unknown key (as
    'where.key', with the keys known there), so that a typo is one line to fix."""
    allowed = sorted(known)
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: {where or 'the file'} must be a table")
    unknown = unknown_keys(table, allowed)
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ConfigError(f"{source}: unknown key '{where + '.' if where else ''}{unknown[0]}'"
                          f"{more}; known keys there: {', '.join(allowed)}")
