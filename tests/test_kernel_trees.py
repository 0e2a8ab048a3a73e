"""The record of a prepared tree (TreeMeta) and build resolution: pure, no archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import UnknownKernelError, VerificationError
from harness.kernels.catalog import Catalog, CatalogEntry, KernelRequest
from harness.kernels.debian import package_version, parse_packages
from harness.kernels.resolve import resolve
from harness.kernels.trees import TREE_FORMAT, TREE_META, TreeMeta, installed_trees, read_meta

META = TreeMeta("6.12.5+deb13-amd64", "6.12.5-1", "trixie",
                ("linux-image-6.12.5+deb13-amd64=6.12.5-1",), {"linux-image-6.12.5+deb13-amd64": "a" * 64},
                "boot/vmlinuz-6.12.5+deb13-amd64", "b" * 64, TREE_FORMAT)


def test_tree_meta_round_trips_through_the_json_it_always_wrote(tmp_path):
    data = META.to_json()
    assert list(data) == ["format", "release", "version", "suite", "packages", "sha256",
                          "vmlinuz", "vmlinuz_sha256"]
    assert TreeMeta.from_json(json.loads(json.dumps(data))) == META
    assert META.origin == "debian:trixie 6.12.5-1" and str(META.upstream) == "6.12.5"
    assert META.built_from(["linux-image-6.12.5+deb13-amd64=6.12.5-1"])
    # written before trees recorded hashes, or by an older layout
    old = {k: v for k, v in data.items() if k not in ("sha256", "vmlinuz_sha256", "format")}
    m = TreeMeta.from_json(old)
    assert m is not None and m.sha256 is None and m.vmlinuz_sha256 is None
    assert not m.built_from(list(META.packages))  # format 0: rebuilt
    assert "sha256" not in m.to_json()


@pytest.mark.parametrize("junk", [
    [], "x", {}, {"release": "r", "version": "1"}, {"release": "r", "version": "1", "suite": 3},
    {"release": "r", "version": "not a version!", "suite": "s"},
    {"release": "r", "version": "1", "suite": "s", "packages": "a=1"},
    {"release": "r", "version": "1", "suite": "s", "format": True},
])
def test_anything_else_is_no_record(junk):
    assert TreeMeta.from_json(junk) is None


def test_installed_trees_skip_directories_without_a_record(tmp_path):
    kernels = tmp_path / "kernels"
    (kernels / "a").mkdir(parents=True)
    (kernels / "a" / TREE_META).write_text(json.dumps(META.to_json()))
    (kernels / "b").mkdir()
    (kernels / "c").mkdir()
    (kernels / "c" / TREE_META).write_text("{half")
    assert installed_trees(tmp_path) == [(kernels / "a", META)]
    assert read_meta(kernels / "b") is None and read_meta(kernels / "c") is None


def _stanza(name: str, version: str, depends: str = "") -> str:
    dep = f"Depends: {depends}\n" if depends else ""
    return (f"Package: {name}\nVersion: {version}\n{dep}Filename: pool/{name}_{version}.deb\n"
            f"Size: 10\nSHA256: {'c' * 64}\n")


def test_resolve_is_pure_over_package_lists():
    bookworm = parse_packages(_stanza("linux-image-6.12.9+deb12-amd64", "6.12.9-1~bpo12+1"),
                              "bookworm-backports")
    trixie = parse_packages("\n".join([
        _stanza("linux-image-6.12.5+deb13-amd64", "6.12.5-1", "linux-base, kmod"),
        _stanza("linux-headers-6.12.5+deb13-amd64", "6.12.5-1",
                "linux-headers-6.12.5+deb13-common (= 6.12.5-1), linux-kbuild-6.12.5+deb13"),
        _stanza("linux-headers-6.12.5+deb13-common", "6.12.5-1"),
    ]), "trixie")
    entry = CatalogEntry("6.12", ("trixie", "bookworm-backports"))
    catalog = Catalog({"6.12": entry}, {})
    lists = {"trixie": trixie, "bookworm-backports": bookworm}
    b = resolve(KernelRequest("6.12", "line", entry=entry), catalog, lists)
    assert b.release == "6.12.9+deb12-amd64" and b.origin == "debian:bookworm-backports 6.12.9-1~bpo12+1"
    b = resolve(KernelRequest("6.12.5+deb13-amd64", "release", entry=entry,
                              release="6.12.5+deb13-amd64"), catalog, lists)
    assert b.names == ["linux-headers-6.12.5+deb13-amd64=6.12.5-1",
                       "linux-headers-6.12.5+deb13-common=6.12.5-1",
                       "linux-image-6.12.5+deb13-amd64=6.12.5-1"]
    lk = b.locked("6.12.5+deb13-amd64")
    assert lk.record() == b.record() and lk.origin == "debian:trixie 6.12.5-1"
    assert len(resolve(KernelRequest("6.12.5+deb13-amd64", "release", entry=entry,
                                     release="6.12.5+deb13-amd64"), catalog, lists,
                       with_headers=False).packages) == 1
    with pytest.raises(UnknownKernelError, match=r"available now: 6\.12\.5"):
        resolve(KernelRequest("6.12.1+deb13-amd64", "release", entry=entry,
                              release="6.12.1+deb13-amd64"), catalog, lists)


def test_a_version_that_is_not_one_is_a_damaged_index():
    assert package_version("6.12.5-1~bpo12+1") < package_version("6.12.5-1")
    with pytest.raises(VerificationError, match="linux-x: 'v 1' is not a Debian version"):
        package_version("v 1", "linux-x")


def test_a_debian_package_shared_by_two_architectures_is_kept_after_extraction():
    """linux-headers-6.1.0-50-common is one _all.deb for 6.1 and 6.1/arm64, prepared side
    by side: removing it after one extraction broke the other ('failed to read archive')."""
    from harness.kernels.trees import shared_deb

    assert shared_deb(Path("debs/linux-headers-6.1.0-50-common_6.1.176-1_all.deb"))
    assert not shared_deb(Path("debs/linux-image-6.1.0-50-arm64_6.1.176-1_arm64.deb"))
