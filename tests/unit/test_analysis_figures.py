"""The report figure (a grouped bar chart drawn with Pillow) and the phenotype colours."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from plexhub.ome_pipeline.analysis.figures import grouped_bars, nice_step
from plexhub.ome_pipeline.analysis.phenotypes import OTHER_COLOR, phenotype_colors


@pytest.mark.parametrize(("top", "step"), [(9.0, 2.0), (10_000.0, 2000.0), (0.7, 0.2),
                                           (0.0, 1.0), (float("nan"), 1.0)])
def test_nice_steps(top: float, step: float) -> None:
    assert nice_step(top) == pytest.approx(step)


def test_colours_follow_the_rules_and_other_is_grey() -> None:
    colors = phenotype_colors(["T", "other", "B"])
    assert colors["other"] == OTHER_COLOR
    assert colors["T"] != colors["B"]
    assert phenotype_colors(["T", "B"]) == {"T": colors["T"], "B": colors["B"]}


def test_bars_are_drawn_in_the_phenotype_colours_and_scale() -> None:
    colors = phenotype_colors(["T", "B", "other"])
    png = grouped_bars({"vehicle": {"T": 100.0, "B": 50.0, "other": 10.0},
                        "high dose": {"T": 200.0, "B": 25.0, "other": 10.0}}, colors,
                       errors={"vehicle": {"T": 10.0}}, title="Density", unit="cells per mm²")
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    assert img.shape == (420, 760, 3)

    def height(hexa: str) -> int:
        rgb = np.array([int(hexa[i:i + 2], 16) for i in (0, 2, 4)])
        hit = (np.abs(img - rgb).max(axis=-1) == 0)
        cols = np.nonzero(hit.any(axis=0))[0]
        cols = cols[cols < 760 - 150]  # not the legend's swatch
        return int(hit[:, cols].sum(axis=0).max())

    # the tallest B bar (50) is a quarter of the tallest T bar (200): one value scale
    assert height(colors["T"]) > 0
    assert height(colors["B"]) == pytest.approx(height(colors["T"]) / 4, abs=3)
