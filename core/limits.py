"""Every limit on what a caller or a source file may make plexhub parse, hold or render, in
one place (the README's limits table is checked against :data:`LIMITS`).

A limit is data: a name, a value, its unit and what it protects. Code reads the constants
below; nothing else in the tree hard-codes a size a hostile input could push on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    name: str
    value: int
    unit: str
    what: str


LIMITS: dict[str, Limit] = {}


def _limit(name: str, value: int, unit: str, what: str) -> int:
    LIMITS[name] = Limit(name, value, unit, what)
    return value


# --- published notebooks ----------------------------------------------------------------
NOTEBOOK_BYTES = _limit("notebook_bytes", 50 * 2**20, "bytes",
                        "an .ipynb document published to a study")

# --- portal forms -------------------------------------------------------------------------
LOGIN_FORM_BYTES = _limit("login_form_bytes", 8192, "bytes", "the portal's login form body")

# --- rendering ----------------------------------------------------------------------------
REGION_PIXELS = _limit("region_pixels", 4096 * 4096, "pixels",
                       "one rendered region (webgateway render_image_region, tiles)")

# --- request bodies, presets, render specs and concurrent renders (security: limits) -------
REQUEST_BODY_BYTES = _limit("request_body_bytes", 2**20, "bytes",
                            "any request body whose route has no larger limit below")
NOTEBOOK_REQUEST_BYTES = _limit("notebook_request_bytes", NOTEBOOK_BYTES + 2**20, "bytes",
                                "the body of a notebook publication (the notebook and its "
                                "envelope)")
BATCH_REQUEST_BYTES = _limit("batch_request_bytes", 8 * 2**20, "bytes",
                             "the body of a batch ingest request (items listed inline)")
PRESET_CHANNELS = _limit("preset_channels", 256, "entries",
                         "channel entries in one render preset, in any format")
PRESET_TEXT_CHARS = _limit("preset_text_chars", 200, "characters",
                           "a preset's name and a channel's label, marker, group, colour or "
                           "LUT name")
PRESET_CHANNEL_INDEX = _limit("preset_channel_index", 65535, "index",
                              "a channel index (and z or t plane) a preset may name")
PRESET_GAMMA = _limit("preset_gamma", 100, "ratio",
                      "a channel's gamma and quantization coefficient (above 0, at most 100)")
PRESET_IMPORT_CHARS = _limit("preset_import_chars", 128 * 1024, "characters",
                             "an imported preset's text (OMERO query string or render YAML)")
YAML_NODES = _limit("yaml_nodes", 8192, "nodes",
                    "YAML nodes in an imported OMERO render file (aliases are refused)")
YAML_DEPTH = _limit("yaml_depth", 32, "levels",
                    "nesting depth of an imported OMERO render file")
SPEC_CHARS = _limit("spec_chars", 16_000, "characters",
                    "the inline render spec= of a tile request (base64url of zlib JSON)")
SPEC_JSON_BYTES = _limit("spec_json_bytes", 256 * 1024, "bytes",
                         "a spec= preset once decompressed")
CELL_TABLE_BYTES = _limit("cell_table_bytes", 2**30, "bytes",
                          "an image's cell table (tables/cells) on disk that the API reads "
                          "and serves as CSV or Parquet")
CELL_SUMMARY_BYTES = _limit("cell_summary_bytes", 16 * 2**20, "bytes",
                            "an image's stored analysis summary (tables/cells/uns/plexhub) "
                            "that a study's phenotype summary reads")
AUDIT_REPORT_EVENTS = _limit("audit_report_events", 20_000, "events",
                             "events of one study the auditor's report renders, as HTML or "
                             "PDF (more: 413; export the trail as CSV or JSON instead)")
PRESET_REF_CHARS = _limit("preset_ref_chars", 80, "characters",
                          "a preset reference (<id>@<version>) in a tile or DeepZoom URL")
HEAVY_RENDER_PIXELS = _limit("heavy_render_pixels", 1024 * 1024, "pixels",
                             "a render larger than this (a region, thumbnail or scaled "
                             "DeepZoom tile) is heavy: caller_heavy_renders bounds it")
CALLER_HEAVY_RENDERS = _limit("caller_heavy_renders", 2, "requests",
                              "heavy renders one caller may have in flight (more: 429 with "
                              "Retry-After)")
CALLER_TILE_RENDERS = _limit("caller_tile_renders", 32, "requests",
                             "uncached tile-sized renders (tiles, small regions and "
                             "thumbnails) one caller may have queued or running (more: 429 "
                             "with Retry-After)")
RENDER_PIXELS_IN_FLIGHT = _limit("render_pixels_in_flight", 2 * REGION_PIXELS, "pixels",
                                 "pixels all renders of one API process hold at once (more "
                                 "wait for their turn)")
RENDER_STRIP_PIXELS = _limit("render_strip_pixels", 2**21, "pixels",
                             "pixels a large region is read and composited in at a time "
                             "(one strip of rows)")

# --- the portal's viewer (issue 19) ---------------------------------------------------------
VALUES_WINDOW = _limit("values_window", 32, "pixels",
                       "the side of the level-0 window read for the values under the cursor")
GUIDE_WAYPOINTS = _limit("guide_waypoints", 100, "entries", "waypoints in one guided view")
GUIDE_TEXT_CHARS = _limit("guide_text_chars", 2000, "characters",
                          "a guided view waypoint's text")
SAVED_VIEWS = _limit("saved_views", 200, "views", "saved views one user keeps on one image")


def markdown_table() -> str:
    """The README's limits table: one row per entry of :data:`LIMITS`, in declaration order."""
    rows = ["| Limit | Value | Unit | Applies to |", "|---|---:|---|---|"]
    rows += [f"| `{x.name}` | {x.value:,} | {x.unit} | {x.what} |" for x in LIMITS.values()]
    return "\n".join(rows) + "\n"
