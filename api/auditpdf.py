"""The auditor's report as a PDF (issue 14): :func:`pdf` of an ``auditreport.Report``.

Pure Python (fpdf2), no browser and no system library: the text is set in the DejaVu Sans
subset shipped beside this module (``fonts/``, its license there) and embedded, so every
viewer shows and every parser extracts the same text. A character the font does not have
(the subset covers Latin, Greek, Cyrillic, punctuation, arrows and mathematical operators)
is written as ``<U+XXXX>``, so nothing a user typed is lost or silently changed; the HTML
report shows it as typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import WrapMode
from fpdf.fonts import TTFFont

from plexhub.api.auditreport import Cell, Heading, Para, Report, Table

FONT = Path(__file__).with_name("fonts") / "DejaVuSans-subset.ttf"
FAMILY = "report"
COLOURS: dict[str, tuple[int, int, int]] = {"ok": (0, 112, 80), "bad": (170, 0, 0)}
SIZES = {1: 15.0, 2: 12.0, 3: 9.5}  # heading level: points
BODY, TABLE = 9.0, 6.5  # points


@cache
def _glyphs() -> frozenset[int]:
    return frozenset(TTFont(FONT).getBestCmap())


def safe(text: str) -> str:
    """``text`` with each character the font lacks (and each control character but a line
    break) written as ``<U+XXXX>``."""
    have = _glyphs()
    if all(ord(c) in have or c == "\n" for c in text):
        return text
    return "".join(c if c == "\n" or (ord(c) in have and ord(c) >= 32)
                   else f"<U+{ord(c):04X}>" for c in text)


def _plain(cell: Cell) -> str:
    return safe("".join("\n" if s.kind == "br" else s.text for s in cell))


def _colour(cell: Cell) -> tuple[int, int, int]:
    kinds = {s.kind for s in cell}
    return next((c for kind, c in COLOURS.items() if kind in kinds), (0, 0, 0))


class _Document(FPDF):
    title_text = ""

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(FAMILY, size=7)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, safe(f"{self.title_text}: page {self.page_no()} of {{nb}}"),
                  align="C")
        self.set_text_color(0, 0, 0)


def _widths(table: Table) -> tuple[float, ...]:
    """Relative column widths: each column's longest line (a header, or a cell up to 60
    characters), so hashes and JSON get room and short columns stay narrow."""
    found = []
    for i, h in enumerate(table.head):
        longest = max([len(w) for w in h.split()] + [
            min(60, max((len(line) for line in _plain(row[i]).split("\n")), default=0))
            for row in table.rows[:500]])
        found.append(float(max(4, longest)))
    return tuple(found)


PAD = 0.8  # mm inside each table cell
LINE = 1.25 * TABLE * 0.3528  # mm between lines of a table cell
WORDS = re.compile(r"\S+\s*")


def _wrap(text: str, width: float, widths: Mapping[int, float], scale: float) -> list[str]:
    """``text`` broken into lines at most ``width`` wide: at spaces, and inside a word that
    is wider than a line (hashes, JSON)."""
    out: list[str] = []
    for para in text.split("\n"):
        line, used = "", 0.0
        for word in WORDS.findall(para):
            full = sum(widths[ord(c)] for c in word) * scale
            seen = full - sum(widths[ord(c)] for c in word[len(word.rstrip()):]) * scale
            if used + seen <= width:
                line, used = line + word, used + full
                continue
            if line:
                out.append(line.rstrip())
                line, used = "", 0.0
            if seen <= width:
                line, used = word, full
                continue
            for c in word:  # wider than a line: break it anywhere
                w = widths[ord(c)] * scale
                if used + w > width and line:
                    out.append(line)
                    line, used = "", 0.0
                line, used = line + c, used + w
        out.append(line.rstrip())
    return out


def _draw_row(doc: _Document, x0: float, cells: Sequence[tuple[list[str], float,
                                                               tuple[int, int, int]]],
              first: int, count: int, fill: Sequence[bool]) -> None:
    """Lines ``first`` to ``first + count`` of each cell, as one band of the table."""
    height = count * LINE + 2 * PAD
    x, y = x0, doc.get_y()
    for (lines, width, colour), filled in zip(cells, fill, strict=True):
        if filled:
            doc.set_fill_color(235, 235, 235)
            doc.rect(x, y, width, height, style="DF")
        else:
            doc.rect(x, y, width, height)
        doc.set_text_color(*colour)
        for i, text in enumerate(lines[first:first + count]):
            if text:
                doc.text(x + PAD, y + PAD + (i + 0.78) * LINE, text)
        x += width
    doc.set_text_color(0, 0, 0)
    doc.set_y(y + height)


def _table(doc: _Document, table: Table) -> None:
    """The table drawn line by line (fpdf2's own tables lay out every cell twice in pure
    Python: too slow for thousands of events); the heading row again on every page."""
    doc.set_font(FAMILY, size=TABLE)
    font = doc.current_font
    assert isinstance(font, TTFFont)
    widths: Mapping[int, float] = font.cw  # glyph widths in 1/1000 em, by code point
    scale = doc.font_size / 1000
    relative = (1.0, 3.0) if table.row_heads else _widths(table)
    cols = [doc.epw * r / sum(relative) for r in relative]
    black = (0, 0, 0)
    bottom = doc.h - doc.b_margin

    def band(values: Sequence[tuple[str, tuple[int, int, int]]], shade: Sequence[bool],
             heading: bool = False) -> None:
        cells = [(_wrap(text, w - 2 * PAD, widths, scale), w, colour)
                 for (text, colour), w in zip(values, cols, strict=True)]
        total = max(len(c[0]) for c in cells)
        done = 0
        while done < total:
            room = int((bottom - doc.get_y() - 2 * PAD) // LINE)
            if room < min(total - done, 3):  # no orphaned first lines
                doc.add_page()
                doc.set_font(FAMILY, size=TABLE)
                if head and not heading:
                    band([(h, black) for h in head], [True] * len(head), heading=True)
                room = int((bottom - doc.get_y() - 2 * PAD) // LINE)
            count = min(room, total - done)
            _draw_row(doc, doc.l_margin, cells, done, count, shade)
            done += count

    head = () if table.row_heads else tuple(safe(h) for h in table.head)
    if head:
        band([(h, black) for h in head], [True] * len(head), heading=True)
    if not table.rows:
        cols = [doc.epw]
        band([("none", black)], [False])
    shade = [table.row_heads] + [False] * (len(cols) - 1)
    for values in table.rows:
        band([(_plain(c), _colour(c)) for c in values], shade)
    doc.ln(3)


def _para(doc: _Document, spans: Cell) -> None:
    doc.set_font(FAMILY, size=BODY)
    colour = COLOURS.get(next((s.kind for s in spans if s.kind in COLOURS), ""), (0, 0, 0))
    doc.set_text_color(*colour)
    doc.multi_cell(0, BODY * 0.45, _plain(spans), new_x="LMARGIN", new_y="NEXT",
                   align="L", wrapmode=WrapMode.WORD)
    doc.set_text_color(0, 0, 0)
    doc.ln(1.5)


def pdf(report: Report) -> bytes:
    """The report as a PDF document (A4 landscape, the tables' headings repeated on every
    page they continue on)."""
    doc = _Document(orientation="L", unit="mm", format="A4")
    doc.title_text = report.title
    doc.set_title(safe(report.title))
    doc.set_creator("plexhub")
    doc.add_font(FAMILY, "", FONT)
    doc.set_auto_page_break(auto=True, margin=14)
    doc.add_page()
    for block in report.blocks:
        if isinstance(block, Heading):
            doc.set_font(FAMILY, size=SIZES.get(block.level, BODY))
            doc.ln(1.5)
            doc.multi_cell(0, SIZES.get(block.level, BODY) * 0.5, safe(block.text),
                           new_x="LMARGIN", new_y="NEXT", align="L", wrapmode=WrapMode.WORD)
            doc.ln(1)
        elif isinstance(block, Para):
            _para(doc, block.spans)
        else:
            _table(doc, block)
    return bytes(doc.output())


