"""The conformance tests every reader must pass (as zarr-python ships ``StoreTests``).

A reader's test module subclasses :class:`ReaderTests`, names the reader class and gives a
``sample`` fixture (a path the reader opens). pytest then runs every ``test_*`` below for it:
detection by content, the lazy-pixel contract, picklable pixel sources (dask workers), and
clear errors for damaged input. Third-party readers registered under the ``plexhub.readers``
entry-point group use the same class::

    from plexhub.ome_pipeline.readers.testing import ReaderTests

    class TestMyReader(ReaderTests):
        reader_cls = MyReader

        @pytest.fixture
        def sample(self, tmp_path):
            return write_my_sample(tmp_path / "x.my")

pytest is imported only by this module, never by the readers themselves.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from plexhub.errors import InputError, PlexhubError
from plexhub.ome_pipeline.readers import available_readers, detect_reader
from plexhub.ome_pipeline.readers.base import Reader, read_head
from plexhub.ome_pipeline.source import SourceDocument, SourceImage

#: at most this many pixels per side are read by a conformance check
EDGE = 64
_METADATA = frozenset({"zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata"})


class ReaderTests:
    """Subclass with ``reader_cls`` and a ``sample`` fixture (a path ``reader_cls`` opens)."""

    reader_cls: ClassVar[type[Reader]]
    #: True when detection by content must pick this reader for ``sample``; a generic reader
    #: (plain TIFF) may leave detection to a more specific one
    detected: ClassVar[bool] = True

    @pytest.fixture
    def sample(self) -> Path:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError("a ReaderTests subclass gives a `sample` fixture")

    @pytest.fixture
    def document(self, sample: Path) -> SourceDocument:
        return self.reader_cls().open(str(sample))

    # -- identity and detection ----------------------------------------------------------

    def test_has_a_name(self) -> None:
        assert isinstance(self.reader_cls.name, str)
        assert self.reader_cls.name

    def test_is_registered(self) -> None:
        targets = available_readers().values()
        assert any(t.endswith(f":{self.reader_cls.__name__}") for t in targets)

    def test_can_open_its_sample(self, sample: Path) -> None:
        assert self.reader_cls.can_open(str(sample), read_head(str(sample)))

    def test_detection_picks_it(self, sample: Path) -> None:
        found = detect_reader(str(sample))
        if self.detected:
            assert type(found) is self.reader_cls
        else:
            assert isinstance(found, Reader)

    def test_refuses_other_content(self, tmp_path: Path) -> None:
        junk = tmp_path / "junk.bin"
        junk.write_bytes(bytes(range(256)) * 4)
        empty = tmp_path / "empty-folder"
        empty.mkdir()
        text = tmp_path / "notes.txt"
        text.write_text("not an image\n")
        for path in (junk, empty, text):
            assert not self.reader_cls.can_open(str(path), read_head(str(path))), path

    # -- the document ----------------------------------------------------------------------

    def test_document_describes_images(self, sample: Path, document: SourceDocument) -> None:
        assert document.images, "a document has at least one image"
        assert document.format
        for image in document.images:
            assert len(image.shape) == 5
            assert all(int(n) >= 1 for n in image.shape)
            assert len(image.channels) == image.shape[1]
            assert all(ch.label for ch in image.channels)
            for ch in image.channels:
                assert ch.color is None or (len(ch.color) == 6
                                            and int(ch.color, 16) >= 0), ch.color

    def test_pixels_have_the_declared_dtype_and_shape(self, document: SourceDocument) -> None:
        for image in document.images:
            block = _corner(image)
            h, w = min(EDGE, image.shape[3]), min(EDGE, image.shape[4])
            assert block.shape == (image.shape[1], h, w)
            assert block.dtype == image.dtype

    def test_regions_agree(self, document: SourceDocument) -> None:
        """A region equals the same pixels read as two halves, and reads repeat."""
        image = document.images[0]
        h, w = min(EDGE, image.shape[3]), min(EDGE, image.shape[4])
        chans = list(range(image.shape[1]))
        whole = image.pixels.read(0, 0, chans, slice(0, h), slice(0, w))
        again = image.pixels.read(0, 0, chans, slice(0, h), slice(0, w))
        np.testing.assert_array_equal(whole, again)
        if w >= 2:
            left = image.pixels.read(0, 0, chans, slice(0, h), slice(0, w // 2))
            right = image.pixels.read(0, 0, chans, slice(0, h), slice(w // 2, w))
            np.testing.assert_array_equal(whole, np.concatenate([left, right], axis=2))
        if image.shape[1] > 1:
            one = image.pixels.read(0, 0, [image.shape[1] - 1], slice(0, h), slice(0, w))
            np.testing.assert_array_equal(one[0], whole[-1])

    def test_pixel_source_pickles(self, document: SourceDocument) -> None:
        """Conversion tasks run on dask workers: the pixel source travels by pickle."""
        image = document.images[0]
        clone: Any = pickle.loads(pickle.dumps(image.pixels))
        np.testing.assert_array_equal(_corner(image), _corner(image, clone))

    # -- damaged input ------------------------------------------------------------------------

    def damaged_copy(self, sample: Path, tmp_path: Path) -> Path:
        """A copy of ``sample`` cut short: a file to half its size; in a folder every
        metadata document (``zarr.json``, ``.zattrs``, ``.zarray``, ``.zgroup``, ``*.xml``)
        to half its size. Override for formats damaged another way."""
        cut = tmp_path / f"cut-{sample.name}"
        if sample.is_dir():
            shutil.copytree(sample, cut)
            for f in cut.rglob("*"):
                if f.is_file() and (f.name in _METADATA or f.suffix == ".xml"):
                    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        else:
            data = sample.read_bytes()
            cut.write_bytes(data[: len(data) // 2])
        return cut

    def test_damaged_copy_fails_clearly(self, sample: Path, tmp_path: Path) -> None:
        """Damaged input is a :class:`PlexhubError` naming the file, never a bare crash."""
        cut = self.damaged_copy(sample, tmp_path)
        with pytest.raises(PlexhubError) as caught:
            _read_everything(self.reader_cls(), cut)
        assert cut.name in str(caught.value)

    def test_missing_file_is_an_error_not_a_crash(self, sample: Path, tmp_path: Path) -> None:
        gone = tmp_path / "gone" / sample.name
        with pytest.raises((InputError, FileNotFoundError)):
            self.reader_cls().open(str(gone))


def _read_everything(reader: Reader, path: Path) -> None:
    """Open ``path`` and read every pixel of every image (a lazy reader may fail only when
    pixels are read)."""
    doc = reader.open(str(path))
    for image in doc.images:
        image.pixels.read(0, 0, list(range(image.shape[1])), slice(0, image.shape[3]),
                          slice(0, image.shape[4]))


def _corner(image: SourceImage, pixels: Any = None) -> Any:
    src = pixels if pixels is not None else image.pixels
    h, w = min(EDGE, image.shape[3]), min(EDGE, image.shape[4])
    return src.read(0, 0, list(range(image.shape[1])), slice(0, h), slice(0, w))
