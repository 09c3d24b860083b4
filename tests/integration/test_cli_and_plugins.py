"""The command line (one-line errors, exit codes, the demo) and third-party reader plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.zarrs import level, read


def plexhub(*args: str | Path, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "plexhub", *map(str, args)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=cwd, timeout=300)


def assert_one_line_error(res: subprocess.CompletedProcess[str], *words: str) -> None:
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0]


@pytest.fixture(scope="module")
def small_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ome_tiff(tmp_path_factory.mktemp("cli") / "s.ome.tif",
                          SyntheticSpec(size_y=300, size_x=200, channels=2, tile=128))


def test_convert_prints_a_summary_and_refuses_an_existing_destination(small_tiff: Path,
                                                                      tmp_path: Path) -> None:
    dst = tmp_path / "o.ome.zarr"
    res = plexhub("convert", small_tiff, dst)
    assert res.returncode == 0, res.stderr
    assert "DAPI, CD3" in res.stdout
    assert "OME-NGFF 0.5" in res.stdout
    res = plexhub("convert", small_tiff, dst)
    assert_one_line_error(res, str(dst), "already exists", "--overwrite")
    assert plexhub("convert", small_tiff, dst, "--overwrite", "--ngff-version", "0.4"
                   ).returncode == 0
    assert (dst / ".zattrs").exists()


@pytest.mark.parametrize(("content", "words"), [
    (b"hello, this is not an image\n", ["not an image format plexhub recognises"]),
    (b"", ["empty"]),
])
def test_not_an_image_is_one_line(tmp_path: Path, content: bytes, words: list[str]) -> None:
    src = tmp_path / "fake.tif"
    src.write_bytes(content)
    res = plexhub("convert", src, tmp_path / "o.zarr")
    assert_one_line_error(res, str(src), *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.tif"]


def test_missing_source_and_bad_options(tmp_path: Path, small_tiff: Path) -> None:
    assert_one_line_error(plexhub("convert", tmp_path / "nope.tif", tmp_path / "o.zarr"),
                          "nope.tif", "no such file")
    assert_one_line_error(plexhub("convert", small_tiff, tmp_path / "o.zarr", "--reader",
                                  "bogus"), "bogus", "no reader of that name")
    assert_one_line_error(plexhub("convert", small_tiff, tmp_path / "o.zarr", "--labels",
                                  "oops"), "NAME=MASK")
    assert not (tmp_path / "o.zarr").exists()


def test_info_readers_validate(small_tiff: Path, tmp_path: Path) -> None:
    res = plexhub("info", small_tiff)
    assert res.returncode == 0
    assert "ome-tiff" in res.stdout
    assert "DAPI, CD3" in res.stdout
    res = plexhub("readers")
    for name in ("ome-tiff", "qptiff", "svs", "tiff", "czi", "mcd", "ome-zarr"):
        assert name in res.stdout
    dst = tmp_path / "o.zarr"
    assert plexhub("convert", small_tiff, dst).returncode == 0
    assert "valid:" in plexhub("validate", dst).stdout
    (dst / "zarr.json").write_text("{}")
    assert plexhub("validate", dst).returncode != 0


def test_demo_generates_converts_and_summarises(tmp_path: Path) -> None:
    res = plexhub("demo", "--size", "600", env={"PLEXHUB_DATA_DIR": str(tmp_path / "data")})
    assert res.returncode == 0, res.stderr
    assert "DAPI, CD3, CD8, CD20, CD68, PanCK, Ki67, FOXP3" in res.stdout
    store = tmp_path / "data" / "stores" / "synthetic-mif-600.ome.zarr"
    assert level(store).shape == (8, 600, 600)


PLUGIN = '''
from __future__ import annotations
import numpy as np
from plexhub.ome_pipeline.readers.base import Reader
from plexhub.ome_pipeline.source import ArrayPixels, SourceDocument, SourceImage

class NpyReader(Reader):
    name = "npy"
    description = "NumPy .npy arrays (c, y, x)"

    @classmethod
    def can_open(cls, path, head):
        return head.startswith(b"\\x93NUMPY")

    def open(self, path):
        a = np.load(path)
        data = a[None, :, None]
        return SourceDocument(path=path, format=self.name, images=[SourceImage(
            name="npy", shape=data.shape, dtype=data.dtype, pixels=ArrayPixels(data))])
'''


def test_third_party_reader_from_an_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "npy_plugin").mkdir(parents=True)
    (site / "npy_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "npy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: npy-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[plexhub.readers]\nnpy = npy_plugin:NpyReader\n")
    data = np.arange(2 * 30 * 20, dtype=np.int16).reshape(2, 30, 20)
    src = tmp_path / "image.bin"  # no telling extension: detection is by content
    with open(src, "wb") as fh:
        np.save(fh, data)
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    assert "npy" in plexhub("readers", env=env).stdout
    assert "npy, 1 image" in plexhub("info", src, env=env).stdout
    res = plexhub("convert", src, tmp_path / "o.zarr", env=env)
    assert res.returncode == 0, res.stderr
    assert np.array_equal(read(tmp_path / "o.zarr"), data)
    # without the plugin the same file is refused
    assert plexhub("info", src).returncode != 0
