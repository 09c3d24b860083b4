from __future__ import annotations

from pathlib import Path

import pytest

import plexhub.ome_pipeline.readers as readers
from plexhub.errors import UnsupportedFormatError


def test_a_reader_that_cannot_load_does_not_hide_the_others(real: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    broken = {"broken": "plexhub_no_such_module:Reader", **readers.BUILTIN_READERS}
    monkeypatch.setattr(readers, "BUILTIN_READERS", broken)
    src = str(real / "qptiff" / "small_vectra.qptiff")
    assert readers.detect_reader(src).name == "qptiff"
    with pytest.raises(UnsupportedFormatError, match="cannot be loaded"):
        readers.get_reader("broken")
    text = real / "MANIFEST.md"
    with pytest.raises(UnsupportedFormatError, match="could not be loaded: broken"):
        readers.detect_reader(str(text))
