"""Classical segmentation: block-wise on Dask equals the in-memory result."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from plexhub.errors import InputError
from plexhub.ome_pipeline.analysis.segmentation import (
    WatershedSegmenter,
    block_chunks,
    get_segmenter,
    global_ids,
    otsu_of,
    renumber,
    segment_array,
    segment_blocks,
)
from plexhub.ome_pipeline.synthetic import SyntheticSpec, render_tile

SPEC = SyntheticSpec(size_y=300, size_x=340, channels=2, seed=3)


@pytest.fixture(scope="module")
def planes() -> tuple[np.ndarray, np.ndarray]:
    h, w = SPEC.size_y, SPEC.size_x
    return render_tile(SPEC, 0, 0, 0, h, w), render_tile(SPEC, 1, 0, 0, h, w)


def _blockwise(seg: WatershedSegmenter, nuc: np.ndarray, mem: np.ndarray | None,
               block: int) -> tuple[np.ndarray, np.ndarray]:
    raw = segment_blocks(seg, da.from_array(nuc), None if mem is None else da.from_array(mem),
                         block=block).compute()
    ids = np.unique(raw[0])
    ids = ids[ids > 0]
    return renumber(raw[0], ids), renumber(raw[1], ids)


@pytest.mark.parametrize(("expand", "membrane"), [(0, False), (4, False), (0, True)])
def test_one_block_is_identical_to_in_memory(planes: tuple[np.ndarray, np.ndarray],
                                            expand: int, membrane: bool) -> None:
    nuc, mem = planes[0], planes[1] if membrane else None
    seg = WatershedSegmenter(expand=expand)
    nuclei, cells = segment_array(seg, nuc, mem)
    assert nuclei.max() > 100  # the synthetic image has a few hundred nuclei
    assert np.array_equal(np.unique(nuclei), np.arange(nuclei.max() + 1))
    bn, bc = _blockwise(seg, nuc, mem, block=1024)
    assert np.array_equal(bn, nuclei)
    assert np.array_equal(bc, cells)
    if expand or membrane:
        assert (cells > 0).sum() > (nuclei > 0).sum()
        inside = nuclei > 0
        assert np.array_equal(cells[inside], nuclei[inside])  # a cell has its nucleus's id


def test_many_blocks_agree_with_in_memory(planes: tuple[np.ndarray, np.ndarray]) -> None:
    seg = WatershedSegmenter(expand=3)
    nuclei, cells = segment_array(seg, planes[0])
    bn, bc = _blockwise(seg, planes[0], None, block=128)  # 3 x 3 blocks, ids across edges
    assert bn.max() == nuclei.max()
    # the watershed breaks ties between equal fronts by push order: a few diagonal pixels
    # on plateaus may go the other way; everything else is the same, ids included
    assert (bn == nuclei).mean() > 0.9995
    assert (bc == cells).mean() > 0.9995


def test_global_ids_follow_first_pixel() -> None:
    labels = np.array([[0, 5, 5], [7, 7, 0]])
    (g,) = global_ids(labels, 10, 2, 100)
    assert g.tolist() == [[0, 10 * 100 + 3 + 1] * 1 + [10 * 100 + 3 + 1],
                          [11 * 100 + 2 + 1] * 2 + [0]]


def test_block_chunks_merge_a_thin_edge() -> None:
    assert block_chunks(1000, 256, 48) == (256, 256, 256, 232)
    assert block_chunks(800, 256, 48) == (256, 256, 288)
    assert block_chunks(100, 256, 48) == (100,)


def test_otsu_is_the_same_in_blocks(planes: tuple[np.ndarray, np.ndarray]) -> None:
    whole = otsu_of(planes[0])
    assert otsu_of(da.from_array(planes[0], chunks=64)) == whole
    assert otsu_of(planes[0].astype(np.float32)) == pytest.approx(whole, rel=0.01)


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match="watershed"):
        get_segmenter("cellpose-that-is-not-installed")
    assert isinstance(get_segmenter("watershed", sigma=2.0), WatershedSegmenter)


PLUGIN = '''
import numpy as np
from scipy import ndimage


class BoxSegmenter:
    """A stand-in for a learned model: every bright connected region is a nucleus."""

    name = "boxes"
    margin = 8

    def __init__(self, level=0.5):
        self.level = level

    def prepare(self, nuclear, membrane):
        self.cut = float(nuclear.max()) * self.level

    def segment(self, nuclear, membrane):
        labels, _ = ndimage.label(nuclear > self.cut)
        return labels, labels
'''


def test_a_segmenter_plugs_in_by_entry_point(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "box_plugin.py").write_text(PLUGIN)
    info = tmp_path / "box_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: box-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[plexhub.segmenters]\nboxes = box_plugin:BoxSegmenter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seg = get_segmenter("boxes", level=0.25)
    image = np.zeros((40, 60), np.uint16)
    image[5:10, 5:12] = 1000
    image[30:35, 40:50] = 800
    nuclei, cells = segment_array(seg, image)
    assert nuclei.max() == 2
    assert np.array_equal(nuclei, cells)
    assert nuclei[7, 7] == 1  # ids in row-major order of first pixels
    assert nuclei[32, 45] == 2
    raw = segment_blocks(seg, da.from_array(image), block=20).compute()
    ids = np.unique(raw[0])
    assert np.array_equal(renumber(raw[0], ids[ids > 0]), nuclei)
