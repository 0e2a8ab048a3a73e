"""kallsyms read out of a kernel image (harness/kernels/kallsyms.py), on images laid out as
scripts/kallsyms.c lays them out across the kernels the harness boots. The real images
are checked against the running kernel's /proc/kallsyms in tests/vm/test_real_kernels.py."""

from __future__ import annotations

import random

import pytest

from harness.kernels.kallsyms import KallsymsError, read_symbols, text_symbols

COMPOUND = [b"do_", b"sys_", b"_start", b"blk_", b"account_", b"io_", b"tcp_", b"vfs_"]


def _tokens() -> list[bytes]:
    """Every printable character stands for itself; the other byte values are compound
    tokens (the real tool picks the most frequent substrings; any will do to decode)."""
    table = []
    spare = iter(COMPOUND + [b"q%d" % i for i in range(256)])
    for b in range(256):
        table.append(bytes([b]) if 0x21 <= b <= 0x7E else next(spare))
    return table


def _encode(text: bytes, table: list[bytes]) -> bytes:
    codes = {t: i for i, t in enumerate(table) if len(t) > 1 and t in COMPOUND}
    out, i = bytearray(), 0
    while i < len(text):
        for tok, code in codes.items():
            if text.startswith(tok, i):
                out.append(code)
                i += len(tok)
                break
        else:
            out.append(text[i])
            i += 1
    return bytes(out)


def _image(symbols: list[tuple[str, str]], *, seqs: bool, width: int, long_len: bool) -> bytes:
    table = _tokens()
    names, markers = bytearray(), []
    for i, (kind, name) in enumerate(symbols):
        if i % 256 == 0:
            markers.append(len(names))
        enc = _encode((kind + name).encode(), table)
        if len(enc) > 127:
            assert long_len
            names += bytes([0x80 | (len(enc) & 0x7F), len(enc) >> 7])
        else:
            names.append(len(enc))
        names += enc
    rng = random.Random(7)
    head = bytes(rng.randrange(256) for _ in range(4096)) + b"0\x001\x002\x003\x00"
    body = bytearray(head)
    body += bytes(-len(body) % 8)
    body += len(symbols).to_bytes(width, "little") + names
    body += bytes(-len(body) % 8)
    body += b"".join(m.to_bytes(width, "little") for m in markers)
    if seqs:  # kallsyms_seqs_of_names: 3 bytes a symbol between markers and tokens
        body += bytes(rng.randrange(256) for _ in range(3 * len(symbols)))
    body += bytes(-len(body) % 8)
    body += b"".join(t + b"\0" for t in table)
    body += bytes(-len(body) % 8)
    body += bytes(512) + bytes(rng.randrange(256) for _ in range(4096))
    return bytes(body)


SYMBOLS = [("T", "_stext")] + [
    (rng_kind, name) for rng_kind, name in (
        ("t" if i % 3 else "T", f"{['do_', 'tcp_', 'vfs_', 'blk_account_io_'][i % 4]}f{i:05d}")
        for i in range(1500))] + [
    ("t", "do_sys_openat2"), ("t", "blk_account_io_merge_bio.part.0"), ("d", "some_data"),
    ("W", "weak_fn"), ("b", "a_bss_object"), ("r", "__func__.1")]


@pytest.mark.parametrize("seqs,width", [(False, 4), (True, 4), (False, 8)],
                         ids=["6.4-and-later", "6.1-with-seqs_of_names", "64-bit-markers"])
def test_symbols_come_back_in_order_with_their_types(seqs: bool, width: int):
    img = _image(SYMBOLS, seqs=seqs, width=width, long_len=False)
    assert read_symbols(img) == SYMBOLS
    text = text_symbols(img)
    assert {"do_sys_openat2", "weak_fn", "_stext", "blk_account_io_merge_bio.part.0"} <= text
    assert "some_data" not in text and "a_bss_object" not in text
    assert "blk_account_io_merge_bio" not in text  # only its clone: no name lookup finds it


def test_a_name_of_more_than_127_tokens_takes_two_length_bytes():
    long_name = "rust_" + "x" * 300  # Rust's mangled names (6.1 and later)
    symbols = [*SYMBOLS[:900], ("T", long_name), *SYMBOLS[900:]]
    img = _image(symbols, seqs=False, width=4, long_len=True)
    assert long_name in text_symbols(img)
    assert read_symbols(img) == symbols


def test_an_image_without_kallsyms_says_so():
    with pytest.raises(KallsymsError, match="token table"):
        read_symbols(bytes(random.Random(1).randrange(256) for _ in range(100_000)))
    img = _image(SYMBOLS, seqs=False, width=4, long_len=False)
    at = img.index(b"\0".join(_tokens()[:4]))
    with pytest.raises(KallsymsError, match="names"):
        read_symbols(bytes(len(img) - (len(img) - at)) + img[at:])  # the names wiped out
