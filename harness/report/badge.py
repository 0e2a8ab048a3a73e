"""A small SVG badge, 'ebpf | 130/135 as expected', for a README. Pure: Report -> text."""

from __future__ import annotations

from ..results import Report
from .templating import render

# Verdana 11px advance widths are about 6-7 px; this estimate keeps text inside its box
# without a font at hand (the badge is static SVG)
_WIDE = set("MW@%mw")
_NARROW = set("il.,:;|!'1 ()[]/")


def _text_width(text: str) -> int:
    return int(sum(10 if c in _WIDE else 4 if c in _NARROW else 7 for c in text)) + 10


def render_badge(report: Report, label: str = "ebpf") -> str:
    good, total = report.counts()
    value = f"{good}/{total} as expected" if total else "no results"
    colour = "#4c1" if report.ok and total else ("#e05d44" if good < total else "#9f9f9f")
    lw, vw = _text_width(label), _text_width(value)
    return render("badge.svg.j2", label=label, value=value, colour=colour, lw=lw, vw=vw)
