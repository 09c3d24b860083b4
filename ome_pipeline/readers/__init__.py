"""Reader registry: built-in readers in a table, third-party ones by entry point.

Detection is by content (magic bytes, then each reader's own check), never by extension
alone. ``open_source(path, reader="name")`` skips detection. A reader that fails on metadata
of the wrong shape (a ``TypeError``, ``KeyError``...) is reported as a
:class:`~plexhub.errors.CorruptFileError` naming the file, never as a crash.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

from plexhub.errors import (
    CorruptFileError,
    MissingFileError,
    PlexhubError,
    UnsupportedFormatError,
)
from plexhub.ome_pipeline.readers.base import TIFF_MAGICS, Reader, read_head
from plexhub.ome_pipeline.readers.truncation import check_tiff_complete
from plexhub.ome_pipeline.source import SourceDocument

ENTRY_POINT_GROUP = "plexhub.readers"

# Most specific first: the generic TIFF reader accepts any TIFF, so it comes last.
BUILTIN_READERS: dict[str, str] = {
    "ome-zarr": "plexhub.ome_pipeline.readers.omezarr:OmeZarrReader",
    "czi": "plexhub.ome_pipeline.readers.czi:CziReader",
    "mcd": "plexhub.ome_pipeline.readers.mcd:McdReader",
    "imc-txt": "plexhub.ome_pipeline.readers.imctxt:ImcTxtReader",
    "ome-tiff": "plexhub.ome_pipeline.readers.tiff:OmeTiffReader",
    "qptiff": "plexhub.ome_pipeline.readers.tiff:QptiffReader",
    "svs": "plexhub.ome_pipeline.readers.tiff:SvsReader",
    "tiff": "plexhub.ome_pipeline.readers.tiff:TiffReader",
}


def load_reader(target: str) -> type[Reader]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Reader)):
        raise TypeError(f"{target} is not a plexhub Reader")
    return cls


def available_readers() -> dict[str, str]:
    """Reader name -> import target; third-party entry points first, then the built-ins."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN_READERS}


def get_reader(name: str) -> Reader:
    readers = available_readers()
    if name not in readers:
        raise UnsupportedFormatError(
            name, "no reader of that name", f"choose one of: {', '.join(readers)}"
        )
    try:
        return load_reader(readers[name])()
    except ImportError as exc:
        raise UnsupportedFormatError(name, f"the reader cannot be loaded ({exc})",
                                     "install its dependencies") from exc


def detect_reader(path: str) -> Reader:
    """The first reader whose ``can_open`` accepts ``path``."""
    p = Path(path)
    if not p.exists():
        raise MissingFileError(str(path), "no such file or folder", "check the path")
    try:
        head = read_head(path)
    except OSError as exc:
        raise CorruptFileError(str(path), f"cannot be read ({exc.strerror})") from exc
    if p.is_file() and not head:
        raise CorruptFileError(str(path), "the file is empty", "copy the file again")
    if head[:4] in TIFF_MAGICS:  # before any reader looks: a partial copy says so
        check_tiff_complete(str(path))
    broken: list[str] = []
    for name, target in available_readers().items():
        try:
            cls = load_reader(target)
        except ImportError as exc:  # one broken reader must not hide the others
            broken.append(f"{name} ({exc})")
            continue
        if cls.can_open(path, head):
            return cls()
    hint = ("expected OME-TIFF, QPTIFF, SVS/NDPI/SCN/BIF/other TIFF, CZI, IMC .mcd or .txt, "
            "OME-Zarr; "
            "pass --reader NAME to force a reader")
    if broken:
        hint += "; readers that could not be loaded: " + ", ".join(broken)
    raise UnsupportedFormatError(str(path), "not an image format plexhub recognises", hint)


def open_source(path: str | Path, reader: str | None = None) -> SourceDocument:
    """Open ``path`` with the named reader, or the one that recognises its content."""
    path = str(path)
    if not Path(path).exists():
        raise MissingFileError(path, "no such file or folder", "check the path")
    if reader:
        r = get_reader(reader)
        if Path(path).is_file() and read_head(path, 4) in TIFF_MAGICS:
            check_tiff_complete(path)
    else:
        r = detect_reader(path)
    try:
        return r.open(path)
    except PlexhubError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # a reader that trusted the file's metadata (a JSON list where an object belongs, a
        # missing key...): the file is malformed, and the caller is told so, not a crash
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise CorruptFileError(path, f"has metadata the {r.name} reader cannot use "
                               f"({type(exc).__name__}{': ' + text if text else ''})",
                               "the file may be damaged, or not the format it looks like") \
            from exc


__all__ = ["ENTRY_POINT_GROUP", "Reader", "available_readers", "detect_reader", "get_reader",
           "load_reader",
           "open_source"]
