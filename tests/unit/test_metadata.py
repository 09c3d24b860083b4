from __future__ import annotations

import pytest

from plexhub.colors import hex_to_rgb, parse_color
from plexhub.errors import InputError
from plexhub.ome_pipeline.metadata import (
    hex_to_ome_color,
    micrometers_per,
    ome_color_to_hex,
    rgb_triplet_to_hex,
    udunits,
)


@pytest.mark.parametrize(("ome", "hexa"), [(-1, "FFFFFF"), (-16776961, "FF0000"),
                                           (16711935, "00FF00"), (65535, "0000FF"),
                                           (255, "000000")])
def test_ome_color_is_signed_rgba(ome: int, hexa: str) -> None:
    assert ome_color_to_hex(ome) == hexa
    assert ome_color_to_hex(hex_to_ome_color(hexa)) == hexa


def test_hex_parsing_accepts_hash_and_any_case() -> None:
    assert parse_color("#00ff7f") == "00FF7F"
    with pytest.raises(InputError, match="six hex digits"):
        parse_color("#FFF")
    # the renderer, the LUTs, the notebook viewer's cell overlay and napari read colours so
    assert hex_to_rgb(parse_color("#ff8000")) == (255, 128, 0)


def test_akoya_triplets_and_units() -> None:
    assert rgb_triplet_to_hex("0,255,0") == "00FF00"
    assert rgb_triplet_to_hex("nope") is None
    assert udunits("µm") == "micrometer"
    assert udunits("nm") == "nanometer"
    assert udunits(None) == "micrometer"


def test_micrometers_per_unit_is_one_table() -> None:
    """The portal's scale bar, the notebook viewer and the analysis read pixel sizes
    through this one table."""
    assert micrometers_per("micrometer") == 1.0
    assert micrometers_per("µm") == 1.0
    assert micrometers_per("NM") == pytest.approx(1e-3)
    assert micrometers_per("millimeter") == 1e3
    assert micrometers_per("angstrom") == pytest.approx(1e-4)
    assert micrometers_per(None) is None
    assert micrometers_per("second") is None  # not a length
    assert micrometers_per("furlong") is None
