import pytest

from harness.errors import ConfigError
from harness.versions import KernelVersion, VersionConstraint, compare_debian_versions


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("6.12", (6, 12, 0)),
        ("6.12.107+deb13-amd64", (6, 12, 107)),
        ("5.10.0-32-amd64", (5, 10, 0)),
        ("v7.3-rc2", (7, 3, 0)),
        ("7.2.13", (7, 2, 13)),
    ],
)
def test_parse(text, want):
    v = KernelVersion.parse(text)
    assert (v.major, v.minor, v.patch) == want


def test_versions_sort_as_versions_not_strings():
    ids = ["6.12", "5.10", "7.2", "6.1", "6.9"]
    assert sorted(ids, key=KernelVersion.parse) == ["5.10", "6.1", "6.9", "6.12", "7.2"]
    assert sorted(ids) != sorted(ids, key=KernelVersion.parse)


def test_bad_version_is_a_clear_error():
    with pytest.raises(ConfigError, match="not a kernel version"):
        KernelVersion.parse("latest")


@pytest.mark.parametrize(
    ("spec", "version", "ok"),
    [
        (">=6.1", "6.1.150", True),
        (">=6.1", "5.10.223", False),
        ("<7.0", "6.12.107", True),
        ("<7.0", "7.0.1", False),
        ("<6.1", "6.1.0", False),  # a line constraint excludes the whole line
        ("==6.12", "6.12.94", True),
        ("6.12", "6.12.94", True),
        (">6.12.94", "6.12.107", True),
        ("!=5.10", "5.10.1", False),
    ],
)
def test_constraints(spec, version, ok):
    assert VersionConstraint.parse(spec).matches(KernelVersion.parse(version)) is ok


@pytest.mark.parametrize(
    ("a", "b", "sign"),
    [
        ("6.12.107-1", "6.12.95-1~bpo12+1", 1),
        ("6.12.95-1~bpo12+1", "6.12.95-1", -1),
        ("1:1.0", "2.0", 1),
        ("7.2.13-1", "7.2.13-1", 0),
        ("5.10.223-1", "5.10.237-1", -1),
        ("1.0~rc1-1", "1.0-1", -1),
        ("1.0a", "1.0", 1),
    ],
)
def test_debian_version_order(a, b, sign):
    c = compare_debian_versions(a, b)
    assert (c > 0) - (c < 0) == sign


@pytest.mark.parametrize("bad", [">=6.1foo", "<7.0,>=6", ">=", "6", ">=6.1.0-32-amd64"])
def test_a_constraint_is_an_operator_and_a_version_nothing_more(bad: str):
    with pytest.raises(ConfigError, match="is not a version constraint"):
        VersionConstraint.parse(bad)
