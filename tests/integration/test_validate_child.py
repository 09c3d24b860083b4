"""``plexhub convert`` validates through a helper process that imported zarr-python and
ome-zarr-models while the conversion started (ome_pipeline/validate_child.py); its verdicts
must be exactly those of validating in-process, and any failure of the helper falls back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plexhub.errors import ValidationError
from plexhub.ome_pipeline import convert, validate_store
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.ome_pipeline.validate_child import ValidatorProcess

PROBE = """
import json, sys
from plexhub.ome_pipeline.validate_child import ValidatorProcess
from plexhub.errors import ValidationError
with ValidatorProcess() as v:
    try:
        out = {"checked": v.validate(sys.argv[1], expect_version="0.5")}
    except ValidationError as exc:
        out = {"error": str(exc)}
print(json.dumps({**out, "zarr_here": "zarr" in sys.modules,
                  "models_here": "ome_zarr_models" in sys.modules}))
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("vchild")
    src = write_ome_tiff(d / "s.ome.tif", SyntheticSpec(size_y=300, size_x=260, channels=2,
                                                        tile=128))
    convert(src, d / "s.ome.zarr")
    return d / "s.ome.zarr"


def probe(path: Path) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True,
                         text=True, timeout=120, check=True)
    return dict(json.loads(res.stdout))


def test_the_helper_validates_and_the_caller_never_imports_zarr(store: Path) -> None:
    out = probe(store)
    assert out["checked"] == validate_store(store, expect_version="0.5")
    assert out["zarr_here"] is False
    assert out["models_here"] is False


def test_the_helper_reports_the_same_invalid_store_as_in_process(store: Path,
                                                                tmp_path: Path) -> None:
    bad = tmp_path / "bad.ome.zarr"
    subprocess.run(["cp", "-r", str(store), str(bad)], check=True)
    doc = json.loads((bad / "zarr.json").read_text())
    doc["attributes"]["ome"]["omero"]["channels"][0]["color"] = "#00FF00"
    (bad / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(ValidationError) as here:
        validate_store(bad, expect_version="0.5")
    out = probe(bad)
    assert out["error"] == str(here.value)
    assert "colour" in str(here.value)
    assert out["zarr_here"] is False  # the verdict came from the helper


def test_a_helper_that_died_falls_back_to_validating_here(store: Path, tmp_path: Path) -> None:
    with ValidatorProcess() as v:
        assert v._proc is not None
        v._proc.kill()
        assert v.validate(str(store), expect_version="0.5") == \
            validate_store(store, expect_version="0.5")
    bad = tmp_path / "empty"
    bad.mkdir()
    with ValidatorProcess() as v:
        v._proc.kill()  # type: ignore[union-attr]
        with pytest.raises(ValidationError):
            v.validate(str(bad), expect_version="0.5")


def test_the_helper_validates_the_documents_given_instead_of_the_path(store: Path,
                                                                      tmp_path: Path) -> None:
    """A store on object storage is validated from its metadata as written: the helper gets
    the documents and never reads the path (here: one that does not exist)."""
    docs = {f.relative_to(store).as_posix(): f.read_bytes() for f in store.rglob("zarr.json")}
    nowhere = str(tmp_path / "not-there.ome.zarr")
    with ValidatorProcess() as v:
        assert v.validate(nowhere, expect_version="0.5", documents=docs) == \
            [nowhere] == validate_store(nowhere, expect_version="0.5", documents=docs)
    bad = json.loads(docs["zarr.json"])
    bad["attributes"]["ome"]["omero"]["channels"][0]["color"] = "#00FF00"
    with ValidatorProcess() as v, pytest.raises(ValidationError, match="colour"):
        v.validate(nowhere, expect_version="0.5",
                   documents={**docs, "zarr.json": json.dumps(bad).encode()})
