"""Published notebooks: parse and validate (nbformat), hash, and render read-only HTML
(nbconvert) that runs nothing from the notebook. Execution at publication is
:mod:`plexhub.api.nbsandbox`'s (never in this process).

Rendering never starts a kernel. Widget state and JavaScript outputs are dropped before
nbconvert sees the notebook. Every piece of HTML the notebook brings — each markdown cell,
each output's ``text/html`` or ``text/markdown``, each raw cell — goes through an allowlist
sanitizer (nh3, the Ammonia HTML sanitizer) on its own, so an unclosed ``<style>``,
``<script>``, ``<textarea>`` or ``<!--`` in one of them ends with it instead of swallowing
the cells after it; each output keeps its own container. The whole page is sanitized once
more: no ``<script>``, no event-handler attributes, no ``javascript:`` links, images only as
embedded ``data:image/...`` URIs. The pages that show the result also send a
Content-Security-Policy without inline scripts, a third fence.
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

from cachetools import LRUCache

from plexhub.errors import InputError
from plexhub.limits import NOTEBOOK_BYTES as MAX_BYTES

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.()-]{0,199}$")
NOTEBOOK_CSS = Path(__file__).parent / "portal" / "static" / "notebook.css"
# what a standalone rendered notebook may load: its own inline CSS and embedded images
HTML_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'self'")
_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DROPPED_MIME = ("application/javascript", "application/vnd.jupyter.widget-view+json",
                 "application/vnd.jupyter.widget-state+json", "text/javascript")


def parse_name(name: str) -> str:
    if not NAME.match(name):
        raise InputError(f"notebook name {name!r}", "is not a plain name",
                         "use letters, digits, spaces and . _ ( ) - (at most 200)")
    return name


def canonical_json(nb: dict[str, Any]) -> bytes:
    """The bytes the content hash covers: sorted keys, no whitespace, UTF-8."""
    return json.dumps(nb, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def content_hash(nb: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(nb)).hexdigest()


def _fix_cell_ids(doc: dict[str, Any]) -> dict[str, Any]:
    """nbformat 4.5 wants unique cell ids; give missing or repeated ones a fresh id (what
    nbformat would do with a warning, without touching the process's warning filters)."""
    doc = copy.deepcopy(doc)
    if doc.get("nbformat") == 4 and int(doc.get("nbformat_minor") or 0) >= 5:
        seen: set[str] = set()
        for cell in doc.get("cells") or []:
            if not isinstance(cell, dict):
                continue
            cid = cell.get("id")
            if not isinstance(cid, str) or (_ID.match(cid) and cid in seen):
                cid = uuid.uuid4().hex[:12]
                cell["id"] = cid
            seen.add(cid)
    return doc


def parse_notebook(doc: Any) -> Any:
    """An nbformat 4 ``NotebookNode`` from the request's JSON, or an :class:`InputError`."""
    import nbformat

    if not isinstance(doc, dict) or "cells" not in doc:
        raise InputError("notebook", "is not a notebook document",
                         "send the JSON content of an .ipynb file")
    text = json.dumps(_fix_cell_ids(doc))
    if len(text) > MAX_BYTES:
        raise InputError("notebook", f"is larger than {MAX_BYTES // 2**20} MiB",
                         "clear large outputs before publishing")
    try:
        nb = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]
        nbformat.validate(nb)
    except (nbformat.ValidationError, ValueError, KeyError, TypeError,
            AttributeError) as exc:
        message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise InputError("notebook", f"is not valid nbformat 4 ({message})",
                         "open and save it in JupyterLab, or run nbformat.validate") from exc
    return nb


def to_text(nb: Any) -> str:
    import nbformat

    return str(nbformat.writes(nb))  # type: ignore[no-untyped-call]


# ------------------------------------------------------------------------------- render

_TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd",
         "del", "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3",
         "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre",
         "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table",
         "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var"}
_ATTRS = {"*": {"class", "title"}, "img": {"src", "alt", "width", "height"},
          "a": {"href"}, "td": {"colspan", "rowspan", "align"},
          "th": {"colspan", "rowspan", "align"}, "ol": {"start"}}
_IMAGE_URIS = ("data:image/png;", "data:image/jpeg;", "data:image/gif;", "data:image/webp;",
               "data:image/svg+xml;")


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if tag == "img" and attr == "src":  # embedded images only: nothing fetched, no tracking
        return value if value.startswith(_IMAGE_URIS) else None
    if value.strip().lower().startswith("data:"):
        return None
    return value


def sanitize(fragment: str) -> str:
    import nh3

    return str(nh3.clean(fragment, tags=_TAGS, attributes=_ATTRS,
                         clean_content_tags={"script", "style", "template", "iframe",
                                             "object", "embed", "noscript"},
                         url_schemes={"http", "https", "mailto", "data"},
                         attribute_filter=_attribute_filter, strip_comments=True,
                         url_relative="deny"))


def _strip_active(nb: Any) -> Any:
    """Drop widget state and script outputs; nothing else of the notebook changes."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.get("metadata", {}).pop("widgets", None)
        for out in cell.get("outputs", []):
            data = out.get("data")
            if isinstance(data, dict):
                for mime in _DROPPED_MIME:
                    data.pop(mime, None)
    return nb


def render_fragment(ipynb: str) -> str:
    """Sanitized HTML of the cells (no ``<html>``/``<head>``), for embedding in a page."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = _strip_active(nbformat.reads(ipynb, as_version=4))  # type: ignore[no-untyped-call]
    # sanitize_html makes the template pass every notebook-made fragment through the
    # clean_html filter, here nh3 with our allowlist, one fragment at a time
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="basic", sanitize_html=True, filters={"clean_html": sanitize})
    body, _ = exporter.from_notebook_node(nb)
    return sanitize(body)


class RenderCache:
    """Rendered fragments by content hash (a version never changes, so neither does its
    HTML); bounded by count."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: LRUCache[str, str] = LRUCache(size)
        self._lock = threading.Lock()  # cachetools is not thread-safe

    def fragment(self, key: str, ipynb: str) -> str:
        with self._lock:
            hit = self._items.get(key)
        if hit is not None:
            return hit
        out = render_fragment(ipynb)
        with self._lock:
            self._items[key] = out
        return out


CACHE = RenderCache()


def standalone_html(title: str, fragment: str) -> str:
    css = NOTEBOOK_CSS.read_text() if NOTEBOOK_CSS.exists() else ""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{css}</style></head>"
            f"<body><main class=\"plexhub-notebook\">{fragment}</main></body></html>")
