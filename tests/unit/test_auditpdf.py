"""The auditor's PDF (api/auditpdf.py) keeps every character of what it is given: a cell
taller than a page continues on the next ones, words wider than a column break inside, and a
character outside the embedded font is written ``<U+XXXX>`` (read back with pypdf)."""

from __future__ import annotations

import io

import pypdf

from plexhub.api.auditpdf import pdf, safe
from plexhub.api.auditreport import Heading, Para, Report, Span, Table, code, t

HEAD = ("seq", "reason", "change", "hash")


def _text(data: bytes) -> tuple[int, str]:
    pages = pypdf.PdfReader(io.BytesIO(data)).pages
    return len(pages), "".join(p.extract_text() for p in pages).replace("\n", "")


def test_long_cells_unicode_and_empty_tables_survive() -> None:
    big = "[" + ",".join(f'"CD{i}"' for i in range(4000)) + "]"
    report = Report("Audit report: study Ü1")
    report.blocks += [
        Heading(report.title, 1), Para((Span("audit chain intact: 2 events", "ok"),)),
        Table("changes", HEAD, [(t(1), t("Grund: Färbung µm 中文\x07"),
                                 (Span("after: "), Span(big, "code")), code("ab" * 32))]),
        Table("study", ("", ""), [(t("title"), t("Tox"))], row_heads=True),
        Table("grants", ("principal", "reason"), [])]
    pages, text = _text(pdf(report))
    assert pages > 3  # the change cell alone takes several pages
    assert text.count('"CD3999"') == 1
    assert "Grund: Färbung µm <U+4E2D><U+6587><U+0007>" in text
    assert "ab" * 32 in text
    assert "none" in text
    assert "page 1 of" in text


def test_safe_writes_what_the_font_lacks() -> None:
    assert safe("ascii µ Ω ≤ ü") == "ascii µ Ω ≤ ü"
    assert safe("a\tb\n中") == "a<U+0009>b\n<U+4E2D>"
