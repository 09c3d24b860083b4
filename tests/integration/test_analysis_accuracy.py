"""Segmentation accuracy against a published mask, kept from regressing.

Ground truth: the MCMICRO exemplar-001 CyCIF tonsil crop (250 x 250, DNA channel) and its
published nuclear segmentation (218 nuclei), see shared/data/real/MANIFEST.md. The default
watershed scored F1 = 0.538 at IoU 0.5 (precision 0.464, recall 0.642) when this test was
written; on the synthetic generator's known nuclei, 0.853.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plexhub.ome_pipeline.analysis.accuracy import match
from plexhub.ome_pipeline.analysis.segmentation import WatershedSegmenter, segment_array
from plexhub.ome_pipeline.synthetic import SyntheticSpec, render_labels, render_tile
from tests.helpers.zarrs import read


def test_f1_on_the_published_exemplar_mask(real: Path) -> None:
    base = real / "ome-zarr"
    dna = read(base / "exemplar-001.crop.image.ome.zarr")[0]
    truth = read(base / "exemplar-001.crop.segmentations.ome.zarr")[0]
    assert len(np.unique(truth)) - 1 == 218
    _, cells = segment_array(WatershedSegmenter(), dna)
    score = match(truth, cells)
    assert score.f1 >= 0.52, score
    assert score.recall >= 0.6, score


def test_f1_on_synthetic_nuclei() -> None:
    spec = SyntheticSpec(size_y=512, size_x=512, channels=1, seed=11)
    image = render_tile(spec, 0, 0, 0, 512, 512)
    _, cells = segment_array(WatershedSegmenter(), image)
    score = match(render_labels(spec, 0, 0, 512, 512), cells)
    assert score.f1 >= 0.83, score


def test_match_counts() -> None:
    truth = np.zeros((10, 10), np.uint16)
    truth[0:4, 0:4] = 1
    truth[6:10, 6:10] = 2
    pred = np.zeros_like(truth)
    pred[0:4, 0:3] = 5  # IoU 0.75
    pred[6:8, 6:8] = 6  # IoU 0.25
    pred[0:2, 8:10] = 7  # nothing there
    s = match(truth, pred)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (1, 2, 1)
    assert s.f1 == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match=r"0\.5"):
        match(truth, pred, iou=0.3)
