"""One rendered tile's steps without HTTP, through the API's own tile engine.

    python bench/tile_parts.py bench/out/tiles/data-8192/state.json [-n 16]

Run by ``tiles.py`` (phase ``parts``) in a child process; prints one JSON line: per tile size
the median process CPU ms of each step. Every step is a call of
:class:`plexhub.api.tiles.TileEngine` (the code the tile route runs, with the API process's
malloc settings, on a worker thread as in the server: Blosc decodes with its own threads when
called from the main thread, and only then):

* read      -- ``TileEngine.planes``: the direct chunk reader, one read per active channel;
* composite -- ``TileEngine.composite`` (read + ``ome_pipeline.render.render``) minus read;
* encode    -- ``TileEngine.render`` (composite under the render slots, then ``encode``)
               minus composite;
* total     -- ``TileEngine.respond`` with the tile cache off: ETag check, render, response.

Each call is followed by a ``settle`` s sleep inside its window and charged the CPU time of the
whole process over that window (``time.process_time``), so work left on other threads counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

QUALITY = 85  # tile_servers.QUALITY (not imported: this process loads only what it measures)


def steps(state_file: str, n: int = 16, settle: float = 0.05) -> dict[str, dict[str, float]]:
    from plexhub.api.models import Image
    from plexhub.api.tiles import Render, TileEngine, etag, tile_region
    from plexhub.malloc import tune_malloc
    from plexhub.presets import bind, parse_preset

    tune_malloc()
    st = json.loads(Path(state_file).read_text())
    meta = st["image"]
    # the catalog row as the API holds it (transient: no database in this process)
    image = Image(id=st["image_id"], study_id=0, source_uri=st["tiff"], fingerprint="bench",
                  checksum=meta.get("checksum"), store_uri=st["store"], store_key="",
                  axes=meta["axes"], levels=meta["levels"], dtype=meta.get("dtype"),
                  channels=meta["channels"], status="ready")
    from plexhub.api.preset_store import image_channels

    preset = parse_preset(st["preset"])
    bound = bind(preset, image_channels(image))
    active = [i for i, _ in bound.active()]
    engine = TileEngine(0)  # no tile cache: every respond() renders

    def timed(fn: Callable[[], Any]) -> float:
        t0 = time.process_time()
        fn()
        time.sleep(settle)
        return (time.process_time() - t0) * 1e3

    out: dict[str, dict[str, float]] = {}
    for size in (512, 256):
        acc: dict[str, list[float]] = defaultdict(list)
        h, w = meta["levels"][0][-2:]
        cells = [(r, c) for r in range(-(-h // size)) for c in range(-(-w // size))]
        for k in range(n + 1):
            r, c = cells[k % len(cells)]
            region = tile_region(image, 0, r, c, size, 0, 0)
            job = Render(image=image, preset=preset, region=region, fmt="jpeg", quality=QUALITY)
            tag = etag(image, preset, 0, r, c, size, k)
            read = timed(lambda: engine.planes(image, region, active))  # noqa: B023
            comp = timed(lambda: engine.composite(image, bound, region))  # noqa: B023
            full = timed(lambda: engine.render(job))  # noqa: B023
            total = timed(lambda: engine.respond(None, tag, True, job, caller=None))  # noqa: B023
            if k:  # the first one opens the array and builds the transfer tables
                acc["read_ms"].append(read)
                acc["render_ms"].append(max(0.0, comp - read))
                acc["encode_ms"].append(max(0.0, full - comp))
                acc["total_ms"].append(total)
        out[str(size)] = {key: statistics.median(v) for key, v in acc.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("state", help="the bench's data-<size>/state.json")
    ap.add_argument("-n", type=int, default=16, help="tiles per size (after one unmeasured)")
    args = ap.parse_args()
    result: dict[str, Any] = {}

    def work() -> None:
        result["parts"] = steps(args.state, args.n)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    if "parts" not in result:
        raise SystemExit("tile_parts.py: the measurement failed (see above)")
    print(json.dumps(result["parts"]))


if __name__ == "__main__":
    main()
