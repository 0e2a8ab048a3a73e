"""The kernel's own symbol table (kallsyms), read out of its image on the host.

Debian ships a placeholder System.map, and BTF is not the list of functions a kprobe can
reach: pahole leaves functions out (Debian's 5.10/arm64 BTF lists 20,338 functions against
34,914 for 5.10/amd64), and it keeps functions that were inlined everywhere and so have no
address. The kernel's kallsyms tables, compiled into every image built with
CONFIG_KALLSYMS, are the list the kernel itself looks names up in when a kprobe or a
trampoline is attached by name.

Their layout, as scripts/kallsyms.c writes it into .rodata:

- ``kallsyms_num_syms`` (an integer), then ``kallsyms_names``: one entry per symbol, a length
  (one byte; two when its high bit is set, 6.1 and later) and that many token numbers; the
  expanded text is the symbol's nm type letter and its name;
- ``kallsyms_markers``: the offset in names of every 256th entry (32 or 64-bit words,
  the first 0, increasing);
- ``kallsyms_seqs_of_names`` (6.2 to 6.3, and backported to 6.1 stable): 3 bytes a symbol;
  from 6.4 it moved after the token index;
- ``kallsyms_token_table``: 256 NUL-terminated strings; a byte that stands for itself in a
  name (every character used in names, digits among them) is its own one-character token.

Nothing here is a symbol of the image (it is stripped): the token table is found by its
run of digit tokens "0".."9", and each table before it by the structure it must have.
Pure: bytes in, names out.
"""

from __future__ import annotations

from array import array

_DIGITS = b"".join(bytes([c, 0]) for c in b"0123456789")
TEXT_TYPES = frozenset("tTwW")  # code: what kprobes and trampolines attach to
_MAX_SYMS = 1 << 21


class KallsymsError(ValueError):
    """The image holds no kallsyms tables this reader can follow."""


def _token_table(img: bytes) -> tuple[int, list[bytes]]:
    """(offset, tokens) of kallsyms_token_table."""
    pos = img.find(_DIGITS)
    while pos != -1:
        start, ok = pos, True
        for _ in range(0x30):  # back over tokens 0x2f..0x00 to the table's first byte
            prev = img.rfind(b"\0", 0, start - 1)  # the NUL before the previous token
            if prev in (-1, start - 2):  # none, or an empty token: not the table
                ok = False
                break
            start = prev + 1
        if ok:
            tokens, p = [], start
            for _ in range(256):
                end = img.find(b"\0", p)
                if end <= p:
                    ok = False
                    break
                tokens.append(img[p:end])
                p = end + 1
            if ok and tokens[0x30:0x3A] == [bytes([c]) for c in b"0123456789"] \
                    and tokens[ord("_")] == b"_":
                return start, tokens
        pos = img.find(_DIGITS, pos + 1)
    raise KallsymsError("no kallsyms token table")


def _runs(img: bytes, lo: int, hi: int, width: int) -> list[tuple[int, list[int]]]:
    """(offset, values) of each run in img[lo:hi] that can be kallsyms_markers: a 0, then
    strictly increasing offsets 256 entries apart (2 to 255 bytes an entry on average)."""
    lo += -lo % width
    words = array("Q" if width == 8 else "I", img[lo:hi - (hi - lo) % width])
    out = []
    i, n = 0, len(words)
    while i < n - 2:
        if words[i] == 0 and 512 <= words[i + 1] <= 256 * 255:
            j = i + 1
            while j < n and 512 <= words[j] - words[j - 1] <= 256 * 255:
                j += 1
            if j - i >= 4:
                out.append((lo + i * width, list(words[i:j])))
                i = j
                continue
        i += 1
    return out


def _entry(img: bytes, p: int) -> tuple[int, int]:
    """(length, offset of its first token) of the names entry at p: one length byte, or
    two when the first has its high bit set (6.1 and later)."""
    b = img[p]
    return ((b & 0x7F) | (img[p + 1] << 7), p + 2) if b & 0x80 else (b, p + 1)


def _entry_ends(img: bytes, start: int, count: int) -> list[int] | None:
    """Offsets (from start) after every 256th of `count` names entries, and after the
    last; None when an entry is malformed."""
    p, marks = start, []
    for i in range(count):
        if i % 256 == 0:
            marks.append(p - start)
        if p + 1 >= len(img):
            return None
        length, p = _entry(img, p)
        if length == 0:
            return None
        p += length
    marks.append(p - start)
    return marks


def _names(img: bytes, markers_at: int, markers: list[int]) -> tuple[int, int] | None:
    """(offset, count) of kallsyms_names ending just before markers_at: the count is
    stored right before the names, and the entries must land on every marker."""
    m = len(markers)
    # the names are the last marker's offset plus at most 256 entries of at most 257 bytes
    # long, then up to 16 bytes of alignment: their start, and the count just before it,
    # lie in a window that size
    hi = markers_at - markers[-1]
    lo = max(0, hi - 256 * 257 - 16 - 8)
    for width in (4, 8):
        for count in range(256 * (m - 1) + 1, 256 * m + 1):
            pat = count.to_bytes(width, "little")
            pos = img.rfind(pat, lo, hi)
            while pos != -1:
                start = pos + width
                ends = _entry_ends(img, start, count)
                if ends is not None and ends[:-1] == markers \
                        and 0 <= markers_at - (start + ends[-1]) < 16:
                    return start, count
                pos = img.rfind(pat, lo, pos + width - 1)
    return None


def read_symbols(img: bytes) -> list[tuple[str, str]]:
    """Every kallsyms entry of the image, in its order: (nm type letter, name)."""
    table_at, tokens = _token_table(img)
    # markers end right before the token table, or before kallsyms_seqs_of_names (3 bytes
    # a symbol) there
    for width in (4, 8):
        window = max(0, table_at - 3 * _MAX_SYMS - 64)
        for at, markers in reversed(_runs(img, window, table_at, width)):
            end = at + width * len(markers)
            gap = table_at - end
            slack = (0 <= gap < 16) or (
                3 * (256 * (len(markers) - 1) + 1) <= gap < 3 * 256 * len(markers) + 16)
            if not slack:
                continue
            found = _names(img, at, markers)
            if found is None:
                continue
            start, count = found
            out, p = [], start
            for _ in range(count):
                length, p = _entry(img, p)
                text = b"".join(tokens[t] for t in img[p:p + length]).decode("latin-1")
                out.append((text[:1], text[1:]))
                p += length
            return out
    raise KallsymsError("no kallsyms names before the token table")


def text_symbols(img: bytes) -> frozenset[str]:
    """The names of the image's code symbols (nm types t, T, w, W)."""
    return frozenset(name for kind, name in read_symbols(img) if kind in TEXT_TYPES)
