"""`plexhub analyze` / analyze(): results inside the store, in both NGFF versions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pytest
import zarr

from plexhub.errors import InputError
from plexhub.ome_pipeline import convert, validate_store
from plexhub.ome_pipeline.analysis import analyze, segment_array
from plexhub.ome_pipeline.analysis.segmentation import WatershedSegmenter
from plexhub.ome_pipeline.analysis.store import TMP_PREFIX, ResultWriter
from plexhub.ome_pipeline.synthetic import SyntheticSpec, render_tile, write_ome_tiff
from tests.helpers.dask import local_cluster, port_held
from tests.helpers.zarrs import attrs_of, group_at, read, values

SPEC = SyntheticSpec(size_y=560, size_x=600, channels=8, tile=128, seed=7)
RULES = ["T: CD3+", "cytotoxic T: CD3+ CD8+", "B: CD20+ CD3-"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ome_tiff(tmp_path_factory.mktemp("analysis") / "s.ome.tif", SPEC)


def store_of(source: Path, tmp_path: Path, version: str) -> Path:
    dst = tmp_path / f"s{version}.ome.zarr"
    convert(source, dst, ngff_version=version, show_progress=False)
    return dst


def plexhub(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "plexhub", *map(str, args)],
                          capture_output=True, text=True, env=dict(os.environ), timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_analyze_writes_labels_and_a_table(source: Path, tmp_path: Path,
                                           version: str) -> None:
    store = store_of(source, tmp_path, version)
    result = analyze(store, nuclear="DAPI", segmenter_options={"expand": 3},
                     phenotypes=RULES, thresholds={"CD8": 900.0}, block=512,
                     show_progress=False)
    assert result.cells > 500
    assert set(result.phenotype_counts) == {"T", "cytotoxic T", "B", "other"}
    assert sum(result.phenotype_counts.values()) == result.cells
    assert result.density_per_mm2 is not None
    assert result.written == ["labels/cells", "labels/nuclei", "tables/cells"]
    # the NGFF labels validate against the schema of the store's version, levels included
    checked = validate_store(store, expect_version=version)
    assert f"{store}/labels/cells" in checked
    assert f"{store}/labels/nuclei" in checked
    root = zarr.open_group(store, mode="r")
    cells = values(root, "labels/cells/0")
    nuclei = values(root, "labels/nuclei/0")
    assert cells.shape == (SPEC.size_y, SPEC.size_x)
    assert cells.dtype == np.uint32
    assert int(cells.max()) == result.cells
    assert np.array_equal(cells[nuclei > 0], nuclei[nuclei > 0])
    labels = group_at(root, "labels/cells")
    attrs = attrs_of(labels)
    meta = attrs["ome"] if version == "0.5" else attrs
    assert meta["image-label"]["source"] == {"image": "../../"}
    assert len(meta["multiscales"][0]["datasets"]) == len(list(labels.arrays()))
    # in memory, the same segmentation of the same plane gives the same labels
    plane = render_tile(SPEC, 0, 0, 0, SPEC.size_y, SPEC.size_x)
    _, mem_cells = segment_array(WatershedSegmenter(expand=3), plane)
    assert (mem_cells == cells).mean() > 0.9995
    # the table: AnnData, channel names as var_names, SpatialData's table attributes
    table = anndata.read_zarr(store / "tables" / "cells")
    assert list(table.var_names) == SPEC.names
    assert table.n_obs == result.cells
    assert table.obs["cell_id"].tolist() == list(range(1, result.cells + 1))
    assert table.uns["spatialdata_attrs"] == {"region": "cells", "region_key": "region",
                                             "instance_key": "cell_id"}
    assert set(table.layers) >= {"median", "p90", "nucleus_mean", "cytoplasm_mean",
                                 "positive"}
    assert table.var.loc["CD8", "threshold"] == 900.0
    assert table.var.loc["CD8", "threshold_method"] == "given"
    assert table.var.loc["CD3", "threshold_method"] == "otsu"
    saved = table.uns["plexhub"]
    # the table group carries SpatialData's table format version, which its reader needs
    tgroup = zarr.open_group(str(store / "tables" / "cells"), mode="r")
    assert tgroup.attrs["version"] == ("0.2" if tgroup.metadata.zarr_format == 3 else "0.1")
    assert saved["thresholds"]["CD8"]["value"] == 900.0
    assert list(saved["phenotype_rules"]) == RULES
    assert saved["summary"]["counts"]["T"] == result.phenotype_counts["T"]
    assert np.allclose(table.obsm["spatial"][:, 0], table.obs["centroid_x"])
    # each cell's mean DAPI: the table agrees with the label image and the pixels
    dapi = values(root, "0")[0]
    for row in (0, table.n_obs // 2, table.n_obs - 1):
        cid = int(table.obs["cell_id"].iloc[row])
        assert table.X[row, 0] == pytest.approx(dapi[cells == cid].mean(), rel=1e-5)
        # the order statistics are numpy's, exactly
        assert table.layers["median"][row, 0] == np.float32(np.median(dapi[cells == cid]))
        assert table.layers["p90"][row, 0] == np.float32(np.percentile(dapi[cells == cid], 90))
    # neighbourhood composition: per phenotype, the mean shares of its 10 nearest cells
    near = saved["summary"]["neighbourhood_10_nearest"]
    assert set(near) <= set(result.phenotype_counts)
    assert near
    for shares in near.values():
        assert sum(shares.values()) == pytest.approx(1.0)
    cd3 = table.layers["positive"][:, 1].astype(bool)
    assert cd3.sum() == result.phenotype_counts["T"] + result.phenotype_counts["cytotoxic T"]
    assert not any(p.name.startswith(TMP_PREFIX) for p in store.iterdir())


@pytest.mark.slow
def test_rerun_replaces_results_whole_or_not_at_all(source: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = store_of(source, tmp_path, "0.5")
    first = analyze(store, nuclear="dapi", show_progress=False)  # names match any case
    assert first.written == ["labels/cells", "tables/cells"]  # no expansion: cells = nuclei
    before = read(store, "labels/cells/0")

    def broken(self: ResultWriter, adata: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ResultWriter, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        analyze(store, nuclear="DAPI", segmenter_options={"min_size": 40},
                show_progress=False)
    assert np.array_equal(read(store, "labels/cells/0"), before)
    assert anndata.read_zarr(store / "tables" / "cells").n_obs == first.cells
    assert not any(p.name.startswith(TMP_PREFIX) for p in store.iterdir())
    monkeypatch.undo()
    second = analyze(store, nuclear="DAPI", membrane="CD3", show_progress=False)
    assert second.written == ["labels/cells", "labels/nuclei", "tables/cells"]
    table = anndata.read_zarr(store / "tables" / "cells")
    assert table.n_obs == second.cells
    assert table.uns["plexhub"]["params"]["membrane"] == "CD3"
    labels = zarr.open_group(store / "labels", mode="r")
    assert attrs_of(labels)["ome"]["labels"] == ["cells", "nuclei"]
    validate_store(store)
    # a run without nuclei of their own takes the earlier run's labels/nuclei away
    third = analyze(store, nuclear="DAPI", show_progress=False)
    assert third.written == ["labels/cells", "tables/cells"]
    assert attrs_of(zarr.open_group(store / "labels", mode="r"))["ome"]["labels"] == ["cells"]
    assert not (store / "labels" / "nuclei").exists()
    validate_store(store)


@pytest.mark.slow
def test_cli_analyze_and_one_line_errors(source: Path, tmp_path: Path) -> None:
    store = store_of(source, tmp_path, "0.4")
    res = plexhub("analyze", store, "--nuclear", "DAPI", "--phenotype", "T: CD3+",
                  "--threshold-method", "gmm", "--block", "512")
    assert res.returncode == 0, res.stderr
    assert "cells, 8 channels measured" in res.stdout
    assert "T: " in res.stdout
    for args, words in [
        (["--nuclear", "Hoechst"], ["--nuclear Hoechst", "the channels are: DAPI, CD3"]),
        (["--nuclear", "DAPI", "--membrane", "WGA"], ["--membrane WGA", "DAPI"]),
        (["--nuclear", "DAPI", "--phenotype", "NK: CD56+"], ["CD56", "not a channel"]),
        (["--nuclear", "DAPI", "--phenotype", "T CD3"], ["expected 'NAME: MARKER+"]),
        (["--nuclear", "DAPI", "--threshold", "CD3"], ["MARKER=VALUE"]),
        (["--nuclear", "DAPI", "--method", "cellpose-x"], ["no segmenter", "watershed"]),
        (["--nuclear", "DAPI", "--scheduler", "fast"], ["not a scheduler"]),
    ]:
        res = plexhub("analyze", store, *args)
        assert res.returncode == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        for w in words:
            assert w in lines[0], (w, lines[0])
    for bad, words in [(tmp_path / "nothing-here", ["does not exist"]),
                       (tmp_path, ["is not an OME-Zarr image", "plexhub convert"])]:
        res = plexhub("analyze", bad, "--nuclear", "DAPI")
        assert res.returncode == 2
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        for w in words:
            assert w in res.stderr


def test_not_a_store_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not an OME-Zarr image"):
        analyze(tmp_path, nuclear="DAPI", show_progress=False)


@pytest.mark.slow
def test_distributed_scheduler_gives_the_local_result(source: Path, tmp_path: Path) -> None:
    local = store_of(source, tmp_path, "0.5")
    analyze(local, nuclear="DAPI", block=512, show_progress=False)
    remote = tmp_path / "remote.ome.zarr"
    convert(source, remote, show_progress=False)
    with port_held(), local_cluster() as cluster:
        analyze(remote, nuclear="DAPI", block=512, scheduler=cluster.scheduler_address,
                show_progress=False)
    a = read(local, "labels/cells/0")
    b = read(remote, "labels/cells/0")
    assert np.array_equal(a, b)
    ta = anndata.read_zarr(local / "tables" / "cells")
    tb = anndata.read_zarr(remote / "tables" / "cells")
    assert np.array_equal(ta.X, tb.X)
