"""Index parsing and dependency following for the three Debian kernel layouts."""

import pytest

from harness.errors import VerificationError
from harness.kernels.catalog import CatalogEntry, KernelRequest
from harness.kernels.debian import (
    abi_of,
    closure,
    image_release,
    parse_packages,
    parse_release,
    signature_ok,
)
from harness.kernels.resolve import HEADER_FAMILIES, IMAGE_FAMILIES, choose

H = "a" * 64
RELEASE = f"""Origin: Debian
Suite: unstable
Codename: sid
Date: Fri, 30 Oct 2026 08:08:01 UTC
Valid-Until: Fri, 06 Nov 2026 08:08:01 UTC
MD5Sum:
 d70654e4ff73403c5076a564041f1484 10824484 main/binary-amd64/Packages.xz
SHA256:
 {H} 64988655 main/binary-amd64/Packages
 {"b" * 64} 10824484 main/binary-amd64/Packages.xz
"""


def stanza(name, version, depends="", size=100):
    dep = f"Depends: {depends}\n" if depends else ""
    return (f"Package: {name}\nVersion: {version}\n{dep}Filename: pool/main/l/{name}_{version}.deb\n"
            f"Size: {size}\nSHA256: {'c' * 64}\nDescription: x\n continued line\n")


SID = "\n".join([
    stanza("linux-image-7.2.13+deb14-amd64", "7.2.13-1",
           "dracut | initramfs-tools (>= 0.120+deb8u2), linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), "
           "linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1), linux-modules-7.2.13+deb14-amd64 (= 7.2.13-1)"),
    stanza("linux-binary-7.2.13+deb14-amd64", "7.2.13-1",
           "linux-base-7.2.13+deb14-amd64 (= 7.2.13-1)"),
    stanza("linux-modules-7.2.13+deb14-amd64", "7.2.13-1",
           "kmod, linux-base-7.2.13+deb14-amd64 (= 7.2.13-1)"),
    stanza("linux-base-7.2.13+deb14-amd64", "7.2.13-1"),
    stanza("linux-headers-7.2.13+deb14-amd64", "7.2.13-1",
           "gcc-16-for-host, linux-base (>= 4.12~), linux-headers-7.2.13+deb14-common (= 7.2.13-1), "
           "linux-kbuild-7.2.13+deb14"),
    stanza("linux-headers-7.2.13+deb14-common", "7.2.13-1"),
    stanza("linux-kbuild-7.2.13+deb14", "7.2.13-1"),
    stanza("linux-image-7.2.13+deb14-cloud-amd64", "7.2.13-1"),
    stanza("linux-image-7.2.13+deb14-rt-amd64", "7.2.13-1"),
    stanza("linux-image-amd64", "7.2.13-1"),
    stanza("python3-foo", "1.0"),
])


def test_release_checksums():
    rel = parse_release(RELEASE)
    assert rel.codename == "sid"
    assert rel.valid_until.startswith("Fri, 06 Nov")
    xz = rel.files["main/binary-amd64/Packages.xz"]
    assert (xz.size, xz.sha256) == (10824484, "b" * 64)


def test_release_without_sha256_is_refused():
    with pytest.raises(VerificationError):
        parse_release("Origin: Debian\nMD5Sum:\n x 1 y\n")


def test_packages_keep_only_linux_and_newest():
    text = SID + "\n" + stanza("linux-base-7.2.13+deb14-amd64", "7.2.12-1")
    pk = parse_packages(text, "sid")
    assert "python3-foo" not in pk
    assert pk["linux-base-7.2.13+deb14-amd64"].version == "7.2.13-1"
    assert pk["linux-image-7.2.13+deb14-amd64"].suite == "sid"


def test_image_release_only_generic_flavour():
    assert image_release("linux-image-7.2.13+deb14-amd64") == "7.2.13+deb14-amd64"
    assert image_release("linux-image-5.10.0-32-amd64") == "5.10.0-32-amd64"
    assert image_release("linux-image-7.2.13+deb14-cloud-amd64") is None
    assert image_release("linux-image-7.2.13+deb14-rt-amd64") is None
    assert image_release("linux-image-amd64") is None
    assert image_release("linux-image-6.1.0-50-amd64-unsigned") is None


def test_depends_keep_alternatives_by_name():
    (pkg,) = parse_packages(stanza("linux-x", "1", "a (>= 1), b | c:any, d"), "sid").values()
    assert pkg.depends == (("a",), ("b", "c"), ("d",))


def test_sid_meta_package_follows_binary_and_modules():
    pk = parse_packages(SID, "sid")
    names = [p.name for p in closure("linux-image-7.2.13+deb14-amd64", pk, "7.2.13+deb14", IMAGE_FAMILIES)]
    assert names[0] == "linux-image-7.2.13+deb14-amd64"
    assert set(names) == {
        "linux-image-7.2.13+deb14-amd64",
        "linux-binary-7.2.13+deb14-amd64",
        "linux-modules-7.2.13+deb14-amd64",
        "linux-base-7.2.13+deb14-amd64",
    }


def test_headers_closure_takes_common_not_kbuild():
    pk = parse_packages(SID, "sid")
    names = {p.name for p in closure("linux-headers-7.2.13+deb14-amd64", pk, "7.2.13+deb14",
                                     HEADER_FAMILIES)}
    assert names == {"linux-headers-7.2.13+deb14-amd64", "linux-headers-7.2.13+deb14-common"}


def test_bullseye_headers_common_by_abi():
    text = "\n".join([
        stanza("linux-headers-5.10.0-32-amd64", "5.10.223-1",
               "linux-headers-5.10.0-32-common (= 5.10.223-1), linux-kbuild-5.10 (>= 5.10.223-1)"),
        stanza("linux-headers-5.10.0-32-common", "5.10.223-1"),
        stanza("linux-image-5.10.0-32-amd64", "5.10.223-1", "kmod, linux-base (>= 4.3~)"),
    ])
    pk = parse_packages(text, "bullseye")
    assert abi_of("5.10.0-32-amd64") == "5.10.0-32"
    img = closure("linux-image-5.10.0-32-amd64", pk, "5.10.0-32", IMAGE_FAMILIES)
    assert [p.name for p in img] == ["linux-image-5.10.0-32-amd64"]
    hdr = closure("linux-headers-5.10.0-32-amd64", pk, "5.10.0-32", HEADER_FAMILIES)
    assert {p.name for p in hdr} == {"linux-headers-5.10.0-32-amd64", "linux-headers-5.10.0-32-common"}


def test_missing_root_package_is_an_error():
    with pytest.raises(VerificationError, match="not in the index"):
        closure("linux-image-9.9.9-amd64", {}, "9.9.9", IMAGE_FAMILIES)


def _cands(*pairs):
    pk = parse_packages("\n".join(stanza(f"linux-image-{r}", v) for r, v in pairs), "x")
    return [(image_release(n), p) for n, p in pk.items()]


def test_choose_newest_build_by_debian_version():
    cands = _cands(("6.12.95+deb12-amd64", "6.12.95-1~bpo12+1"), ("6.12.107+deb13-amd64", "6.12.107-1"),
                   ("6.12.94+deb13-amd64", "6.12.94-1"))
    req = KernelRequest("6.12", "line", entry=CatalogEntry("6.12", ("trixie",)))
    assert choose(cands, req)[0] == "6.12.107+deb13-amd64"
    pinned = KernelRequest("6.12.94+deb13-amd64", "release", entry=req.entry,
                           release="6.12.94+deb13-amd64")
    assert choose(cands, pinned)[0] == "6.12.94+deb13-amd64"
    gone = KernelRequest("6.12.1+deb13-amd64", "release", entry=req.entry, release="6.12.1+deb13-amd64")
    with pytest.raises(Exception, match=r"6\.12\.107"):
        choose(cands, gone)


def test_signature_status():
    good = "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG ABC Debian\n[GNUPG:] VALIDSIG 4CB5 2026-10-30 1\n"
    missing_one = good + "[GNUPG:] ERRSIG 1234 1 10 01 1 9\n[GNUPG:] NO_PUBKEY 1234\n"
    assert signature_ok(good)
    assert signature_ok(missing_one)  # as apt: another good signature suffices
    assert not signature_ok("[GNUPG:] NO_PUBKEY 1234\n")
    assert not signature_ok(good + "[GNUPG:] BADSIG DEF Debian\n")
    assert not signature_ok(good.replace("VALIDSIG", "EXPKEYSIG"))


def _release(suite: str = "unstable", codename: str = "sid", valid_until: str | None = None):
    from harness.kernels.debian import IndexFile, Release

    return Release(suite, codename, "Fri, 30 Oct 2026 08:08:01 UTC", valid_until,
                   {"x": IndexFile("x", 1, "0" * 64)})


def test_an_expired_index_is_refused_unless_allowed_with_a_warning():
    import email.utils

    import pytest

    from harness.errors import VerificationError
    from harness.kernels.debian import check_release

    until = "Fri, 06 Nov 2026 08:08:01 UTC"
    now = email.utils.parsedate_to_datetime(until).timestamp()
    assert check_release(_release(valid_until=until), "sid", now - 1, False) is None
    with pytest.raises(VerificationError, match=r"expired 17 day\(s\) ago.*allow_expired_index"):
        check_release(_release(valid_until=until), "sid", now + 17 * 86400, False)
    warning = check_release(_release(valid_until=until), "sid", now + 17 * 86400, True)
    assert warning is not None and "used anyway" in warning
    assert check_release(_release(), "sid", now + 1e9, False) is None  # no Valid-Until


def test_an_index_for_another_suite_is_refused():
    import pytest

    from harness.errors import VerificationError
    from harness.kernels.debian import check_release

    assert check_release(_release(), "unstable", 0, False) is None
    with pytest.raises(VerificationError, match="not the one asked for"):
        check_release(_release("stable", "trixie"), "sid", 0, False)


def test_expired_and_undigestible_signatures_are_refused():
    good = "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG K name\n[GNUPG:] VALIDSIG F 2026-10-30\n"
    assert signature_ok(good)
    assert not signature_ok(good + "[GNUPG:] EXPSIG K name\n")
    assert signature_ok(good + "[GNUPG:] ERRSIG K 1 8 01 0 9\n[GNUPG:] NO_PUBKEY K\n")
    assert not signature_ok(good + "[GNUPG:] ERRSIG K 1 2 01 0 5\n")  # a weak digest


def test_release_fields_span_lines_and_odd_checksum_lines_are_skipped():
    text = RELEASE.replace("Origin: Debian\n", "Origin: Debian\nDescription: Debian x\n more text\n")
    text += f" {'d' * 63} 5 main/short-hash\n {'e' * 64} five main/bad-size\n"
    rel = parse_release(text)
    assert set(rel.files) == {"main/binary-amd64/Packages", "main/binary-amd64/Packages.xz"}
    assert rel.suite == "unstable" and rel.date.startswith("Fri, 30 Oct")
    with pytest.raises(VerificationError, match="empty Release"):
        parse_release("\n")
