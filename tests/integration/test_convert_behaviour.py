"""Conversion behaviour on synthetic data: pyramid, histograms, metadata, atomicity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from plexhub.errors import DestinationExistsError, InputError
from plexhub.ome_pipeline import convert, validate_store
from plexhub.ome_pipeline.histogram import percentile
from plexhub.ome_pipeline.pyramid import downsample_mean
from plexhub.ome_pipeline.synthetic import SyntheticSpec, render_tile, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.zarrs import array_at, group_at, values

SPEC = SyntheticSpec(size_y=600, size_x=500, channels=3, tile=128, seed=3)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ome_tiff(tmp_path_factory.mktemp("src") / "syn.ome.tif", SPEC)


def reference(spec: SyntheticSpec) -> np.ndarray:
    return np.stack([render_tile(spec, c, 0, 0, spec.size_y, spec.size_x)
                     for c in range(spec.channels)])


def ome(node: zarr.Group | zarr.Array) -> dict[str, Any]:
    attrs = dict(node.attrs)
    found = attrs.get("ome", attrs)
    assert isinstance(found, dict)
    return found


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_every_level_is_the_iterated_2x2_mean(source: Path, tmp_path: Path, version: str,
                                              small_settings: Settings) -> None:
    dst = tmp_path / "out.ome.zarr"
    result = convert(source, dst, ngff_version=version, settings=small_settings)
    g = zarr.open_group(dst, mode="r")
    meta = ome(g)
    datasets = meta["multiscales"][0]["datasets"]
    assert [d["path"] for d in datasets] == ["0", "1", "2"]  # 600 -> 300 -> 150 (<= 256)
    expect = reference(SPEC)
    for level, d in enumerate(datasets):
        arr = array_at(g, d["path"])
        assert arr.shape == expect.shape, level
        assert np.array_equal(np.asarray(arr[:]), expect), f"level {level} differs"
        expect = downsample_mean(expect)
    assert result.images[0].levels[0].shape == (3, 600, 500)
    assert result.tasks_total > 20  # several blocks and two passes
    if version == "0.5":
        metadata = array_at(g, "0").metadata
        assert metadata.zarr_format == 3
        assert array_at(g, "0").shards == (1, 128, 128)
        assert array_at(g, "2").shards == (1, 128, 128)  # pass 2 starts again at the block size
        assert array_at(g, "1").shards == (1, 64, 64)
        assert list(metadata.dimension_names or ()) == ["c", "y", "x"]
    else:
        assert g["0"].metadata.zarr_format == 2
        assert meta["multiscales"][0]["version"] == "0.4"


def test_metadata_names_colours_units_and_windows(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.ome.zarr"
    convert(source, dst)
    g = zarr.open_group(dst, mode="r")
    meta = ome(g)
    assert meta["version"] == "0.5"
    ms = meta["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "y", "x"]
    assert ms["axes"][1]["unit"] == "micrometer"
    scale0 = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale0 == [1.0, 0.5, 0.5]
    chans = meta["omero"]["channels"]
    assert [c["label"] for c in chans] == ["DAPI", "CD3", "CD8"]
    assert [c["color"] for c in chans] == ["0000FF", "FF0000", "00FF00"]
    hist = json.loads((dst / "histograms" / "zarr.json").read_text())["attributes"]["plexhub"][
        "histograms"]
    data = reference(SPEC)
    for c, (ch, h) in enumerate(zip(chans, hist["channels"], strict=True)):
        assert h["count"] == data[c].size
        assert h["min"] == data[c].min()
        assert h["max"] == data[c].max()
        assert set(ch["window"]) == {"min", "max", "start", "end"}
        # integer pixels: the percentiles widened to whole numbers
        assert ch["window"]["start"] == np.floor(percentile(h, 0.1))
        assert ch["window"]["end"] == np.ceil(percentile(h, 99.9))
        bin_width = (h["max"] - h["min"]) / 4096 + 1
        assert ch["window"]["end"] == pytest.approx(np.percentile(data[c], 99.9),
                                                    abs=bin_width + 1)
    xml = (dst / "OME" / "METADATA.ome.xml").read_text()
    assert 'Name="CD3"' in xml


def test_ome_zarr_py_reads_the_output(source: Path, tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    for version in ("0.5", "0.4"):
        dst = tmp_path / f"out{version}.ome.zarr"
        convert(source, dst, ngff_version=version)
        nodes = list(Reader(parse_url(str(dst)))())
        assert nodes, version
        data = nodes[0].data
        assert len(data) == 3
        assert np.array_equal(np.asarray(data[0]), reference(SPEC))
        assert nodes[0].metadata["name"] == ["DAPI", "CD3", "CD8"] or \
            nodes[0].metadata.get("channel_names") == ["DAPI", "CD3", "CD8"]


def test_existing_destination_needs_overwrite(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.ome.zarr"
    convert(source, dst)
    before = (dst / "zarr.json").read_bytes()
    with pytest.raises(DestinationExistsError, match="--overwrite"):
        convert(source, dst)
    assert (dst / "zarr.json").read_bytes() == before
    convert(source, dst, overwrite=True, ngff_version="0.4")
    assert (dst / ".zattrs").exists()
    assert not (dst / "zarr.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr"]


def test_labels_are_attached_with_the_same_levels(source: Path, tmp_path: Path,
                                                  small_settings: Settings) -> None:
    import tifffile

    from plexhub.ome_pipeline.synthetic import render_labels

    mask = render_labels(SPEC, 0, 0, SPEC.size_y, SPEC.size_x)
    mask_path = tmp_path / "mask.tif"
    tifffile.imwrite(mask_path, mask)
    dst = tmp_path / "out.ome.zarr"
    result = convert(source, dst, labels={"nuclei": str(mask_path)}, settings=small_settings)
    assert result.labels == ["nuclei"]
    g = zarr.open_group(dst, mode="r")
    assert ome(g["labels"])["labels"] == ["nuclei"]
    lab = group_at(g, "labels/nuclei")
    lmeta = ome(lab)
    assert "image-label" in lmeta
    assert len(lmeta["multiscales"][0]["datasets"]) == len(ome(g)["multiscales"][0]["datasets"])
    assert np.array_equal(values(lab, "0"), mask)
    ids = set(np.unique(mask).tolist())
    assert set(np.unique(values(lab, "2")).tolist()) <= ids  # mode never invents ids
    validate_store(dst)


def test_mask_of_the_wrong_size_is_refused(source: Path, tmp_path: Path) -> None:
    import tifffile

    bad = tmp_path / "small.tif"
    tifffile.imwrite(bad, np.zeros((10, 10), np.uint16))
    with pytest.raises(InputError, match="must match the image"):
        convert(source, tmp_path / "out.ome.zarr", labels={"cells": str(bad)})
    assert not (tmp_path / "out.ome.zarr").exists()
    assert not (tmp_path / ".out.ome.zarr.partial").exists()


def test_as_labels_writes_a_label_image(real: Path, tmp_path: Path) -> None:
    """An image + labels pair (issue 17, item 2): the label image at labels/<name>, the root
    a display image of the same pixels that readers show by default."""
    import tifffile

    src = real / "labels" / "E34_mask.tiff"
    dst = tmp_path / "mask.ome.zarr"
    convert(src, dst, as_labels=True)
    g = zarr.open_group(dst, mode="r")
    assert ome(g["labels"])["labels"] == ["E34_mask"]
    plexhub_attrs = dict(g.attrs)["plexhub"]
    assert isinstance(plexhub_attrs, dict)
    assert plexhub_attrs["label_image"] == "labels/E34_mask"
    meta = ome(g["labels/E34_mask"])
    assert meta["image-label"]["source"] == {"image": "../../"}
    assert "omero" not in meta
    assert meta["multiscales"][0]["type"] == "mode"
    assert np.array_equal(values(g, "labels/E34_mask/0"), tifffile.imread(src))
    root = ome(g)
    assert "image-label" not in root
    assert root["omero"]["channels"][0]["label"] == "E34_mask"
    assert np.array_equal(np.asarray(array_at(g, "0")[0]), tifffile.imread(src))
    with pytest.raises(InputError, match="integers"):
        convert(real / "labels" / "E34_imc.tiff", tmp_path / "x.zarr", as_labels=True)


def test_progress_callback_reaches_one(source: Path, tmp_path: Path,
                                      small_settings: Settings) -> None:
    seen: list[float] = []
    convert(source, tmp_path / "o.zarr", settings=small_settings,
            progress=lambda p: seen.append(p.fraction))
    assert len(seen) > 10
    assert seen == sorted(seen)
    assert seen[-1] == 1.0


def test_an_inform_segmentation_map_becomes_four_named_label_images(
        real: Path, tmp_path: Path) -> None:
    """inForm's binary_seg_maps.tif (issue 17, item 4): four pages, tissue, nucleus,
    cytoplasm and membrane, attached with one --labels; each becomes its own label image."""
    import tifffile

    rng = np.random.default_rng(5)
    pages = rng.integers(0, 40, (4, 100, 100), dtype=np.uint32)
    seg = tmp_path / "E34_binary_seg_maps.tif"
    tifffile.imwrite(seg, pages, photometric="minisblack")
    dst = tmp_path / "out.ome.zarr"
    result = convert(real / "labels/E34_imc.tiff", dst, labels={"seg": str(seg)})
    names = ["seg-tissue", "seg-nucleus", "seg-cytoplasm", "seg-membrane"]
    assert result.labels == names
    g = zarr.open_group(dst, mode="r")
    assert ome(g["labels"])["labels"] == names
    for k, name in enumerate(names):
        assert "image-label" in ome(g[f"labels/{name}"])
        assert np.array_equal(values(g, f"labels/{name}/0"), pages[k])
    other = tmp_path / "pages.tif"  # any other multi-page mask: numbered
    tifffile.imwrite(other, pages[:2], photometric="minisblack")
    result = convert(real / "labels/E34_imc.tiff", tmp_path / "o2.ome.zarr",
                     labels={"m": str(other)})
    assert result.labels == ["m-0", "m-1"]
