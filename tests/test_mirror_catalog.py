from pathlib import Path

import pytest

from harness.config import Config
from harness.errors import ConfigError, MirrorError, UnknownKernelError
from harness.kernels.catalog import load_catalog, parse_kernel_ids
from harness.kernels.mirror import (
    parse_deb822_sources,
    parse_one_line_sources,
    pick_mirrors,
    resolve_mirrors,
)

DEB822 = """Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://vendor.example/apt
Suites: nodistro
Components: main
Signed-By: /usr/share/keyrings/vendor.gpg
"""


def test_deb822_sources():
    srcs = parse_deb822_sources(DEB822)
    assert pick_mirrors(srcs) == ("http://mirror.example/debian", "http://mirror.example/debian-security")


def test_one_line_sources_with_options():
    text = ("# deb http://old.example/debian buster main\n"
            "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            "http://m.example/debian/ bookworm main\n"
            "deb https://vendor.example/apt cloud-sdk-bookworm main\n")
    srcs = parse_one_line_sources(text)
    assert pick_mirrors(srcs) == ("http://m.example/debian", None)


def test_config_mirror_wins_and_security_is_derived(tmp_path):
    cfg = Config(mirror="http://cfg.example/debian")
    assert resolve_mirrors(cfg, tmp_path) == ("http://cfg.example/debian",
                                              "http://cfg.example/debian-security")


def test_no_mirror_says_how_to_set_one(tmp_path):
    with pytest.raises(MirrorError, match="EBPF_HARNESS_MIRROR"):
        resolve_mirrors(Config(), tmp_path)


def test_catalog_default_set_and_ids(repo: Path):
    cat = load_catalog(repo / "kernels")
    assert [e.line for e in cat.lines()] == ["5.10", "6.1", "6.12", "7.2", "7.3"]
    reqs = parse_kernel_ids("default", cat)
    assert [r.id for r in reqs] == list(cat.sets["default"])
    pinned = parse_kernel_ids("6.12.94+deb13-amd64,5.10", cat)
    assert (pinned[0].kind, pinned[0].entry.line, pinned[0].release) == (
        "release", "6.12", "6.12.94+deb13-amd64")
    assert pinned[1].kind == "line"


def test_unknown_kernel_lists_available_lines(repo: Path):
    cat = load_catalog(repo / "kernels")
    with pytest.raises(UnknownKernelError) as e:
        parse_kernel_ids("4.19", cat)
    assert "5.10, 6.1, 6.12, 7.2, 7.3" in str(e.value)
    with pytest.raises(UnknownKernelError, match="no such file"):
        parse_kernel_ids("./no/such/bzImage", cat)


def test_catalog_set_naming_unknown_line(tmp_path):
    (tmp_path / "k.toml").write_text('[lines."6.1"]\nsuites=["bookworm"]\n[sets]\nx=["6.2"]\n')
    with pytest.raises(ConfigError, match=r"names 6\.2"):
        load_catalog(tmp_path)


def test_catalog_unknown_keys_name_the_file_and_key(tmp_path):
    import pytest

    from harness.errors import ConfigError
    from harness.kernels.catalog import load_catalog

    (tmp_path / "k.toml").write_text('[lines."6.1"]\nsuites = ["bookworm"]\nsuite = "x"\n')
    with pytest.raises(ConfigError, match=r"k\.toml: unknown key 'lines\.\"6\.1\"\.suite'"):
        load_catalog(tmp_path)
    (tmp_path / "k.toml").write_text('flavor = "amd64"\n[lines."6.1"]\nsuites = ["bookworm"]\n')
    with pytest.raises(ConfigError, match="unknown key 'flavor'"):
        load_catalog(tmp_path)


def test_deb822_sources_keep_continuation_lines():
    """Multi-line fields (python-debian): suites on two lines count, and a source whose
    Signed-By is an inline key block is not taken for the Debian archive."""
    text = ("Types: deb\nURIs: http://vendor.example/apt\nSuites: bookworm\nSigned-By:\n"
            " -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGN\n"
            " -----END PGP PUBLIC KEY BLOCK-----\n\n"
            "Types: deb deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
            " bookworm-updates\nComponents: main\n\n"
            "Types: deb\nURIs: http://off.example/debian\nSuites: trixie\nEnabled: no\n")
    srcs = parse_deb822_sources(text)
    assert [s.suites for s in srcs] == [("bookworm",), ("bookworm", "bookworm-updates")]
    assert "BEGIN PGP PUBLIC KEY BLOCK" in srcs[0].signed_by
    assert pick_mirrors(srcs) == ("http://mirror.example/debian", None)
