"""The auditor's report as a PDF (issue 14): :func:`pdf` of an ``auditreport.Report``.

Pure Python (fpdf2), no browser and no system library: the text is set in the DejaVu Sans
subset shipped beside this module (``fonts/``, its license there) and embedded, so every
viewer shows and every parser extracts the same text. A character the font does not have
(the subset covers Latin, Greek, Cyrillic, punctuation, arrows and mathematical operators)
is written as ``<U+XXXX>``, so nothing a user typed is lost or silently changed; the HTML
report shows it as typed.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import TableCellFillMode, WrapMode
from fpdf.fonts import FontFace

from plexhub.api.auditreport import Cell, Heading, Para, Report, Table

FONT = Path(__file__).with_name("fonts") / "DejaVuSans-subset.ttf"
FAMILY = "report"
COLOURS = {"ok": (0, 112, 80), "bad": (170, 0, 0)}
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


def _style(cell: Cell) -> FontFace | None:
    kinds = {s.kind for s in cell}
    for kind, colour in COLOURS.items():
        if kind in kinds:
            return FontFace(color=colour)
    return None


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


def _table(doc: _Document, table: Table) -> None:
    doc.set_font(FAMILY, size=TABLE)
    rows = table.rows
    head = ("", "") if table.row_heads else table.head
    widths = (1, 3) if table.row_heads else _widths(table)
    with doc.table(col_widths=widths, first_row_as_headings=not table.row_heads,
                   headings_style=FontFace(fill_color=(235, 235, 235)),
                   cell_fill_mode=TableCellFillMode.NONE, line_height=1.25 * TABLE * 0.3528,
                   text_align="LEFT", wrapmode=WrapMode.WORD, padding=0.8,
                   repeat_headings=1) as out:
        if not table.row_heads:
            out.row([safe(h) for h in head])
        if not rows:
            out.row().cell("none", colspan=len(head))
        for values in rows:
            row = out.row()
            for cell in values:
                row.cell(_plain(cell), style=_style(cell))
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


