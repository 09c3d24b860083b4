"""The reader seam: one :class:`Reader` per format, chosen by content."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from plexhub.ome_pipeline.source import SourceDocument

TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def read_head(path: str, n: int = 512) -> bytes:
    """The first ``n`` bytes of a file, or b"" for folders."""
    p = Path(path)
    if p.is_dir():
        return b""
    with p.open("rb") as fh:
        return fh.read(n)


class Reader(ABC):
    """A format reader: ``can_open`` looks at content, ``open`` is lazy about pixels."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def can_open(cls, path: str, head: bytes) -> bool:
        """True when the file (its first bytes are ``head``) is in this reader's format."""

    @abstractmethod
    def open(self, path: str) -> SourceDocument:
        """Read the metadata of ``path``; pixels stay on disk until asked for."""
