"""What SpatialData reads from `plexhub export spatialdata` (issue 16): the image with the
channel names as its `c` coordinates, the label images, and the cell table linked to the
`cells` labels, the pixels identical to the store's.

spatialdata 0.7.3 pins dask < 2026.1.2, which would downgrade the project's dask, distributed
and ome-zarr; it runs in its own venv (uv, cached under build/) and prints what it read.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from plexhub.errors import DestinationExistsError, InputError
from plexhub.ome_pipeline import convert, validate_store
from plexhub.ome_pipeline.analysis import analyze, export_spatialdata
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.zarrs import values

SPATIALDATA = "spatialdata==0.7.3"
BUILD = Path(__file__).resolve().parents[2] / "build"
SPEC = SyntheticSpec(size_y=300, size_x=330, channels=5, tile=128, seed=11)

READER = r'''
import hashlib, json, sys, warnings
import numpy as np
import spatialdata as sd
from spatialdata.transformations import get_transformation

def digest(a):
    return hashlib.sha256(np.ascontiguousarray(np.asarray(a)).tobytes()).hexdigest()

def levels(tree):
    return [tree[k]["image"] for k in sorted(tree.keys(), key=lambda k: int(k[5:]))]

out = {}
for path in sys.argv[1:]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = sd.read_zarr(path)
    got = {"warnings": [str(w.message) for w in caught], "images": {}, "labels": {},
           "tables": {}, "coordinate_systems": sorted(s.coordinate_systems)}
    for name, tree in s.images.items():
        lv = levels(tree)
        got["images"][name] = {
            "dims": list(lv[0].dims), "shapes": [list(a.shape) for a in lv],
            "c": [str(c) for c in lv[0].coords["c"].values],
            "digests": [digest(a) for a in lv],
            "um": [float(v) for v in get_transformation(tree, "micrometers").scale]
            if "micrometers" in get_transformation(tree, get_all=True) else None}
    for name, tree in s.labels.items():
        lv = levels(tree)
        got["labels"][name] = {"dims": list(lv[0].dims), "shapes": [list(a.shape) for a in lv],
                               "digests": [digest(a) for a in lv]}
    for name, table in s.tables.items():
        attrs = table.uns["spatialdata_attrs"]
        entry = {"n_obs": table.n_obs, "var_names": list(table.var_names), "attrs": attrs}
        region = attrs["region"]
        entry["annotates"] = sorted(sd.get_element_annotators(s, region))
        element, joined = sd.join_spatialelement_table(
            s, spatial_element_names=region, table_name=name, how="left")
        entry["joined_ids"] = joined.obs[attrs["instance_key"]].astype(int).tolist()
        got["tables"][name] = entry
    out[path] = got
print(json.dumps(out))
'''


@pytest.fixture(scope="session")
def spatialdata_python() -> Path:
    """The python of a venv with spatialdata (built once, kept under build/)."""
    try:
        from uv import find_uv_bin
    except ImportError:  # pragma: no cover - a venv made before uv joined the dev extras
        pytest.fail("uv is missing: it is a dev dependency (pip install -e '.[dev]' or "
                    "pip install uv)")
    venv = BUILD / SPATIALDATA.replace("==", "-")
    python = venv / "bin" / "python"
    BUILD.mkdir(exist_ok=True)
    with (BUILD / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (xdist, parallel runs)
        if not (venv / ".ready").exists():
            uv = find_uv_bin()
            subprocess.run([uv, "venv", "--quiet", "--clear", "--python", sys.executable,
                            str(venv)], check=True, timeout=300)
            subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python),
                            SPATIALDATA], check=True, timeout=900)
            (venv / ".ready").touch()
    return python


def run_spatialdata(python: Path, *stores: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([str(python), "-c", READER, *map(str, stores)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory,
             spatialdata_python: Path) -> dict[str, Any]:
    """Analysed stores (NGFF 0.5 and 0.4), a store without results, their exports, and
    what spatialdata read from each export."""
    tmp = tmp_path_factory.mktemp("spatialdata")
    source = write_ome_tiff(tmp / "s.ome.tif", SPEC)
    stores, outs = {}, {}
    for key, version in (("0.5", "0.5"), ("0.4", "0.4"), ("plain", "0.5")):
        stores[key] = tmp / f"{key}.ome.zarr"
        convert(source, stores[key], ngff_version=version, show_progress=False)
        if key != "plain":
            analyze(stores[key], nuclear="DAPI", segmenter_options={"expand": 2},
                    phenotypes=["T: CD3+"], show_progress=False)
        outs[key] = tmp / f"{key}.sdata.zarr"
    before = {k: _listing(s) for k, s in stores.items()}
    cli = subprocess.run([sys.executable, "-m", "plexhub", "export", "spatialdata",
                          str(stores["0.5"]), str(outs["0.5"])],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert "labels cells, nuclei" in cli.stdout
    assert "tables cells_table (tables/cells)" in cli.stdout
    for key in ("0.4", "plain"):
        export_spatialdata(stores[key], outs[key])
    read = run_spatialdata(spatialdata_python, *outs.values())
    return {"stores": stores, "outs": outs, "before": before,
            "read": {k: read[str(o)] for k, o in outs.items()}}


def _listing(store: Path) -> dict[str, int]:
    return {str(p.relative_to(store)): p.stat().st_mtime_ns for p in store.rglob("*")}


@pytest.mark.slow
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_spatialdata_reads_image_labels_and_the_linked_table(exported: dict[str, Any],
                                                             version: str) -> None:
    store, got = exported["stores"][version], exported["read"][version]
    root = zarr.open_group(store, mode="r")
    # the image: channel names as c, every level the store's pixels, µm as a coordinate system
    assert list(got["images"]) == ["image"]
    image = got["images"]["image"]
    assert image["dims"] == ["c", "y", "x"]
    assert image["c"] == SPEC.names
    nlevels = len(image["shapes"])
    assert nlevels >= 2
    for k in range(nlevels):
        assert image["digests"][k] == digest(values(root, str(k)))
    assert image["shapes"][0] == [SPEC.channels, SPEC.size_y, SPEC.size_x]
    assert image["um"] == [1.0, SPEC.pixel_size, SPEC.pixel_size]
    assert got["coordinate_systems"] == ["global", "micrometers"]
    # the label images, pixel for pixel
    assert sorted(got["labels"]) == ["cells", "nuclei"]
    for name, label in got["labels"].items():
        assert label["dims"] == ["y", "x"]
        for k in range(len(label["shapes"])):
            assert label["digests"][k] == digest(values(root, f"labels/{name}/{k}"))
    # the table: renamed (SpatialData's names are unique across elements), linked to cells
    assert list(got["tables"]) == ["cells_table"]
    table = got["tables"]["cells_table"]
    cells = values(root, "labels/cells/0")
    n = int(cells.max())
    assert table["n_obs"] == n
    assert table["var_names"] == SPEC.names
    assert table["attrs"] == {"region": "cells", "region_key": "region",
                              "instance_key": "cell_id"}
    assert table["annotates"] == ["cells_table"]
    assert table["joined_ids"] == list(range(1, n + 1))  # every label matched to its row
    if version == "0.4":  # Zarr v2: SpatialData's older container format, which it reads
        assert any("most current format" in w for w in got["warnings"])


@pytest.mark.slow
def test_a_store_without_results_exports_its_image(exported: dict[str, Any]) -> None:
    got = exported["read"]["plain"]
    assert list(got["images"]) == ["image"]
    assert got["images"]["image"]["c"] == SPEC.names
    assert got["labels"] == {}
    assert got["tables"] == {}


@pytest.mark.slow
def test_the_store_is_untouched_and_still_valid_ngff(exported: dict[str, Any]) -> None:
    for key, store in exported["stores"].items():
        assert _listing(store) == exported["before"][key]
    for version in ("0.5", "0.4"):
        checked = validate_store(exported["stores"][version], expect_version=version)
        assert f"{exported['stores'][version]}/labels/cells" in checked
    # the export copied level files as they are: same bytes, not a re-encoding
    out = exported["outs"]["0.5"]
    store = exported["stores"]["0.5"]
    for rel in ("0/zarr.json", "labels/cells/0/zarr.json"):
        target = "images/image/0/zarr.json" if rel.startswith("0/") else rel
        assert (out / target).read_bytes() == (store / rel).read_bytes()


def test_export_refuses_an_existing_or_overlapping_destination(tmp_path: Path) -> None:
    store = tmp_path / "s.ome.zarr"
    convert(write_ome_tiff(tmp_path / "s.ome.tif", SyntheticSpec(size_y=64, size_x=64,
                                                                 channels=2, tile=64)),
            store, show_progress=False)
    out = tmp_path / "s.sdata.zarr"
    first = export_spatialdata(store, out)
    assert first.labels == []
    assert first.tables == {}
    with pytest.raises(DestinationExistsError, match="pass --overwrite"):
        export_spatialdata(store, out)
    again = export_spatialdata(store, out, name="slide", overwrite=True)
    assert again.image == "slide"
    assert sorted(p.name for p in (out / "images").iterdir()) == ["slide", "zarr.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers
    with pytest.raises(InputError, match="overlaps the store"):
        export_spatialdata(store, store / "inside.zarr")
    with pytest.raises(InputError, match="not a SpatialData element name"):
        export_spatialdata(store, tmp_path / "x.zarr", name="my image")


def test_a_label_image_spatialdata_cannot_name_is_skipped_and_said(tmp_path: Path) -> None:
    store = tmp_path / "s.ome.zarr"
    convert(write_ome_tiff(tmp_path / "s.ome.tif", SyntheticSpec(size_y=64, size_x=64,
                                                                 channels=2, tile=64)),
            store, show_progress=False)
    labels = zarr.open_group(store / "labels", mode="w", zarr_format=3)
    labels.attrs["ome"] = {"version": "0.5", "labels": ["my mask"]}
    mask = labels.create_group("my mask")
    mask.attrs["ome"] = {"version": "0.5", "image-label": {}, "multiscales": [{
        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 1.0]}]}]}]}
    mask.create_array("0", shape=(64, 64), dtype="uint32", fill_value=0)
    result = export_spatialdata(store, tmp_path / "s.sdata.zarr")
    assert result.labels == []
    assert result.skipped == {"labels/my mask": "its name is not a SpatialData element name"}
    assert "skipped labels/my mask: its name is not" in result.summary()
    assert not (tmp_path / "s.sdata.zarr" / "labels").exists()
