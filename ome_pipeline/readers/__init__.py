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
from plexhub.storage import filesystem, is_url

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


# the readers that read a source from a URL (fsspec) directly, in detection order
URL_READERS = ("ome-zarr", "ome-tiff", "qptiff", "svs", "tiff")


def _detect_url(url: str, reader: str | None) -> Reader:
    """The reader for a URL source: OME-Zarr (a prefix) and the TIFF family (an object,
    read in byte ranges); other formats need a local copy (their libraries read files)."""
    fs, inner = filesystem(url)
    if not fs.exists(inner):
        raise MissingFileError(url, "no such object or prefix", "check the URL")
    is_dir = fs.isdir(inner)
    if reader:
        if reader not in URL_READERS:
            raise UnsupportedFormatError(url, f"the {reader} reader reads local files only",
                                         "copy the file into a local ingest folder")
        return get_reader(reader)
    if is_dir:
        if any(fs.exists(f"{inner}/{m}") for m in ("zarr.json", ".zgroup", ".zattrs")):
            return get_reader("ome-zarr")
        raise UnsupportedFormatError(url, "is a prefix without Zarr metadata",
                                     "give the URL of an OME-Zarr store or of one file")
    head = bytes(fs.cat_file(inner, start=0, end=512))
    if not head:
        raise CorruptFileError(url, "the object is empty", "upload the file again")
    if head[:4] in TIFF_MAGICS:
        for name in URL_READERS[1:]:
            cls = load_reader(BUILTIN_READERS[name])
            if cls.can_open(url, head):
                return cls()
    raise UnsupportedFormatError(url, "is not an OME-Zarr or TIFF-family image, the formats "
                                 "read straight from object storage",
                                 "copy other formats (CZI, MCD, ...) into a local ingest folder")


def open_source(path: str | Path, reader: str | None = None) -> SourceDocument:
    """Open ``path`` with the named reader, or the one that recognises its content."""
    path = str(path)
    if is_url(path):
        return _open_with(_detect_url(path, reader), path)
    if not Path(path).exists():
        raise MissingFileError(path, "no such file or folder", "check the path")
    if reader:
        r = get_reader(reader)
        if Path(path).is_file() and read_head(path, 4) in TIFF_MAGICS:
            check_tiff_complete(path)
    else:
        r = detect_reader(path)
    return _open_with(r, path)


def _open_with(r: Reader, path: str) -> SourceDocument:
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
