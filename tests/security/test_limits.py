"""One small request must not stall the server (issue 12): every parser and renderer has its
limits in ``plexhub.limits``, over a limit is a 4xx within 100 ms, memory stays bounded.

The attacks run against a real uvicorn server in this process, so the growth of this
process's RSS is the server's.
"""

from __future__ import annotations

import io
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import psutil
import pytest
from PIL import Image
from pydantic import SecretStr

from plexhub import limits
from plexhub.api import tiles as tiles_module
from plexhub.api.renderlimits import CallerLimit, PixelBudget
from plexhub.api.tiles import encode_spec
from plexhub.errors import BusyError
from plexhub.ome_pipeline.synthetic import SyntheticSpec
from plexhub.policies.access import Principal
from plexhub.settings import Settings
from tests.helpers.httpapi import ingest, ok
from tests.helpers.server import running_server

ADMIN = "admin-token-for-tests-0123456789"
FAST = 0.1  # seconds: "over a limit is a 413/422 within 100 ms"

# 491 bytes: nine levels of nine aliases, 9**9 "lol"s once expanded (about 244 MB of text)
ALIAS_BOMB = "\n".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi",
                                                                strict=True)),
    "channels: {1: {start: 0, end: 1, color: FF0000, label: *i}}", ""])


@dataclass
class Live:
    base: str
    image: str
    incoming: Path
    http: httpx.Client  # one client: a new one costs tens of ms (its TLS context)

    @property
    def api(self) -> str:
        return f"{self.base}/api/v1"

    def h(self, token: str = ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("limits")
    incoming = tmp / "data" / "incoming"
    incoming.mkdir(parents=True)
    with running_server(Settings(data_dir=tmp / "data", admin_token=SecretStr(ADMIN))) as base:
        api = f"{base}/api/v1"
        h = {"Authorization": f"Bearer {ADMIN}"}
        ok(httpx.post(f"{api}/studies", headers=h, json={
            "code": "LIM", "title": "limits", "sponsor": "acme", "profile": "non-glp"}))
        image = ingest(api, ADMIN, incoming, "LIM", "small.ome.tif",
                       SyntheticSpec(size_y=256, size_x=256, channels=3, tile=256))
        with httpx.Client(headers=h, timeout=300) as http:
            yield Live(base, image, incoming, http)


class PeakRss:
    """The highest RSS of this process while the block runs (sampled every 2 ms)."""

    def __enter__(self) -> PeakRss:
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def fastest(call: Callable[[], httpx.Response], tries: int = 3) -> tuple[httpx.Response, float]:
    """The response and the best wall time of ``tries`` identical requests (a loaded test
    machine may delay one; bounded work is fast every time)."""
    best, response = float("inf"), None
    for _ in range(tries):
        t0 = time.perf_counter()
        response = call()
        best = min(best, time.perf_counter() - t0)
    assert response is not None
    return response, best


def fast(live: Live) -> float:
    """FAST, plus this moment's round trip of a request that does nothing (x 3): on a loaded
    test machine the scheduler delays every request alike, bounded work stays within it,
    and unbounded work (a parse of megabytes, an expanded alias bomb) takes seconds."""
    _, idle = fastest(partial(live.http.get, f"{live.api}/health"))
    return FAST + 3 * idle


def one_line_4xx(r: httpx.Response) -> str:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert isinstance(detail, str), detail
    assert "\n" not in detail
    assert 0 < len(detail) < 600, detail
    return detail


# ------------------------------------------------------------------------------ the table

def test_every_limit_is_stated_with_what_it_protects() -> None:
    assert len(limits.LIMITS) >= 15
    for name, limit in limits.LIMITS.items():
        assert limit.name == name
        assert limit.what.strip(), name
        assert limit.unit.strip(), name
        assert limit.value > 0, name
    table = limits.markdown_table()
    assert table.count("\n") == len(limits.LIMITS) + 2
    for name in limits.LIMITS:
        assert f"| `{name}` |" in table


# ------------------------------------------------------------------------------------ YAML

def test_the_yaml_alias_bomb_is_refused_at_once_without_memory(live: Live) -> None:
    assert len(ALIAS_BOMB.encode()) < 600
    url = f"{live.api}/images/{live.image}/presets:import"
    body = {"format": "omero-yaml", "content": ALIAS_BOMB, "name": "lol"}
    live.http.get(f"{live.api}/images/{live.image}")  # token and image cached
    with PeakRss() as rss:
        r, wall = fastest(lambda: live.http.post(url, json=body, timeout=120))
    assert r.status_code == 422, r.text[:300]
    assert "alias" in one_line_4xx(r)
    assert wall < fast(live), wall
    assert rss.growth_mb < 20, rss.growth_mb


def test_deep_or_large_yaml_is_refused(live: Live) -> None:
    url = f"{live.api}/images/{live.image}/presets:import"
    deep = "channels: {1: {start: 0, end: 1, color: FF0000, label: " + "[" * 200 + \
        "]" * 200 + "}}"
    many = "channels:\n" + "".join(f"  {i}: {{start: 0, end: 1, color: FF0000}}\n"
                                   for i in range(1, 3000))
    for text, status, word in ((deep, 422, "deeper"), (many, 413, "nodes"),
                               ("x" * (limits.PRESET_IMPORT_CHARS + 1), 413, "limit")):
        body = {"format": "omero-yaml", "content": text, "name": "big"}
        r, wall = fastest(partial(live.http.post, url, json=body))
        assert r.status_code == status, r.text[:300]
        assert word in one_line_4xx(r)
        assert wall < fast(live), (word, wall)


# --------------------------------------------------------------------- malformed imports

MALFORMED: list[tuple[str, Any]] = [
    ("omero-yaml", "channels: [1, 2]"),
    ("omero-yaml", "channels:\n  1: 5\n"),
    ("omero-yaml", "channels:\n  1: {start: 0, end: 1, color: FF0000}\nz: abc\n"),
    ("omero-yaml", "channels:\n  1: {start: 0, end: 1, color: nope.lut}\n"),
    ("omero-yaml", "channels:\n  1: {start: 0, end: 1, color: FF0000, label: {a: 1}}\n"),
    ("omero-yaml", "1" * 5000 + ": 2\nchannels: {1: {start: 0, end: 1, color: FF0000}}\n"),
    ("omero-yaml", "channels: {1: {start: 0, end: 1, color: !!python/name:os.system FF}}"),
    ("omero-yaml", 42),
    ("omero-query", {"c": 5}),
    ("omero-query", "c=1|0:1$FF0000&maps=" + "[" * 50_000),
    ("omero-query", "c=" + "9" * 5000 + "|0:1$FF0000"),
    ("omero-query", "c=1|0:1$bogus.lut"),
    ("omero-query", "c=" + ",".join(["1|0:1$FF0000"] * 300)),
    ("ngff-omero", {"channels": "abc"}),
    ("ngff-omero", {"channels": [{"window": {"start": "a", "end": 5}}]}),
    ("ngff-omero", {"channels": [{"window": [1, 2]}]}),
    ("ngff-omero", {"channels": [{"color": "FF0000"}], "rdefs": []}),
    ("ngff-omero", {"channels": [5]}),
    ("napari", [5]),
    ("napari", [{"contrast_limits": [1]}]),
    ("napari", [{"contrast_limits": [0, 1], "colormap": [1e308, 0, 0]}]),
    ("napari", [{"contrast_limits": [0, 1], "contrast_limits_range": 5}]),
    ("napari", [{"contrast_limits": ["a", "b"]}]),
    ("napari", {"a": 1}),
]


@pytest.mark.parametrize(("fmt", "content"), MALFORMED,
                         ids=[f"{f}-{i}" for i, (f, _) in enumerate(MALFORMED)])
def test_malformed_imports_are_a_4xx_naming_the_problem(live: Live, fmt: str,
                                                        content: Any) -> None:
    r = live.http.post(f"{live.api}/images/{live.image}/presets:import",
                   json={"format": fmt, "content": content, "name": "bad"}, timeout=60)
    one_line_4xx(r)


# ---------------------------------------------------------------------------------- presets

def channel(**change: Any) -> dict[str, Any]:
    return {"label": "DAPI", "color": "0000FF", "window": {"start": 0, "end": 4000}} | change


@pytest.mark.parametrize(("doc", "words"), [
    ({"name": "many", "channels": [channel(label=f"c{i}") for i in range(300)]},
     ["channels", "300", "256"]),
    ({"name": "long", "channels": [channel(label="x" * 10_000)]}, ["label", "200"]),
    ({"name": "n" * 1000, "channels": [channel()]}, ["name", "200"]),
    ({"name": "gamma", "channels": [channel(gamma=1e6)]}, ["gamma", "100"]),
    ({"name": "nan", "channels": [channel(window={"start": 0, "end": "Infinity"})]},
     ["window"]),
    ({"name": "index", "channels": [channel(index=10**30)]}, ["index"]),
])
def test_preset_documents_are_bounded(live: Live, doc: dict[str, Any],
                                      words: list[str]) -> None:
    r, wall = fastest(lambda: live.http.post(f"{live.api}/presets", json={
        "scope": "panel", "target": "p", "document": doc}, timeout=60))
    assert r.status_code == 422, r.text[:300]
    detail = one_line_4xx(r)
    for word in words:
        assert word in detail
    assert wall < fast(live), wall


# ------------------------------------------------------------------------- request bodies

def raw_post(base: str, path: str, headers: dict[str, str], length: int | None,
             body: Iterator[bytes]) -> tuple[int, dict[str, Any], int, float]:
    """POST over a plain socket, sending ``body`` piece by piece until the server answers:
    (status, JSON body, bytes of body sent, seconds from the headers to the answer)."""
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    head = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}", "Content-Type: application/json",
            *(f"{k}: {v}" for k, v in headers.items())]
    head.append(f"Content-Length: {length}" if length is not None
                else "Transfer-Encoding: chunked")
    sent = 0
    with sock:
        t0 = time.perf_counter()
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for piece in body:
            if select.select([sock], [], [], 0.005)[0]:
                break  # the answer is there
            data = piece if length is not None else b"%x\r\n%s\r\n" % (len(piece), piece)
            try:
                sock.sendall(data)
            except OSError:
                break
            sent += len(piece)
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += sock.recv(65536)
        wall = time.perf_counter() - t0
        header, _, rest = raw.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        size = next(int(v) for k, _, v in (x.partition(": ") for x in lines[1:])
                    if k.lower() == "content-length")
        while len(rest) < size:
            rest += sock.recv(65536)
    return int(lines[0].split()[1]), json.loads(rest[:size]), sent, wall


def eighteen_mb() -> Iterator[bytes]:
    piece = b'{"label": "DAPI", "color": "0000FF", "window": {"start": 0, "end": 1}},' * 900
    yield b'{"scope": "panel", "target": "p", "document": {"name": "huge", "channels": ['
    for _ in range(18 * 2**20 // len(piece)):
        yield piece


def test_an_18_mb_preset_is_413_before_its_body_is_read(live: Live) -> None:
    status, body, sent, wall = raw_post(live.base, "/api/v1/presets", live.h(),
                                        18 * 2**20, eighteen_mb())
    assert status == 413, body
    assert "limit" in body["detail"]
    assert sent < 4 * 2**20  # answered long before the body was sent
    assert wall < fast(live), wall


def test_a_chunked_body_is_413_once_it_passes_the_limit(live: Live) -> None:
    with PeakRss() as rss:
        status, body, sent, _ = raw_post(live.base, "/api/v1/presets", live.h(), None,
                                         eighteen_mb())
    assert status == 413, body
    assert limits.REQUEST_BODY_BYTES < sent < 6 * 2**20
    assert rss.growth_mb < 40, rss.growth_mb


def test_larger_documents_keep_their_larger_route_limits(live: Live) -> None:
    pad = b" " * (2 * 2**20)  # 2 MiB: over the general limit, within the notebook route's
    status, body, _, _ = raw_post(live.base, "/api/v1/studies/LIM/notebooks", live.h(),
                                  len(pad) + 2, iter([b"{}" + pad]))
    assert status == 422, body  # the route read it: no name, no notebook (LIM exists: an
    # unknown study would be the 404 its dependency answers before the body is validated)
    assert "notebook" in body["detail"]
    status, body, _, _ = raw_post(live.base, "/api/v1/studies/NOPE/images", live.h(),
                                  len(pad) + 2, iter([b"{}" + pad]))
    assert status == 413, body


# ---------------------------------------------------------------------------------- spec=

def test_a_15_kb_spec_bomb_is_refused_cheaply(live: Live) -> None:
    doc = {"channels": [channel(label="CD8")] * 52_000}  # 3.8 MB of JSON
    spec = encode_spec(doc)
    assert 15_000 < len(spec) <= limits.SPEC_CHARS
    url = f"{live.api}/images/{live.image}/tiles/0/0/0.png"
    r, wall = fastest(lambda: live.http.get(url, params={"spec": spec},
                                        timeout=60))
    assert r.status_code == 413, r.text[:300]
    assert "decompresses" in one_line_4xx(r)
    assert wall < fast(live), wall
    too_many = encode_spec({"channels": [channel(label=f"c{i}") for i in range(300)]})
    r = live.http.get(url, params={"spec": too_many}, timeout=60)
    assert r.status_code == 422
    assert "256" in one_line_4xx(r)
    r = live.http.get(url, params={"spec": "A" * (limits.SPEC_CHARS + 1)},
                  timeout=60)
    one_line_4xx(r)


# ----------------------------------------------------------------------------- renders

def test_caller_limit_refuses_the_next_request_and_releases() -> None:
    limit = CallerLimit(2, "region renders")
    ann, bob = Principal("ann", "sponsor"), Principal("bob", "sponsor")
    with limit.hold(ann), limit.hold(ann):
        with pytest.raises(BusyError) as info, limit.hold(ann):
            pass
        assert info.value.retry_after >= 1
        assert "2 region renders" in str(info.value)
        with limit.hold(bob):  # another caller is not affected
            assert limit.held(bob) == 1
    assert limit.held(ann) == 0
    with limit.hold(ann):
        pass


def test_pixel_budget_makes_renders_wait_their_turn() -> None:
    budget = PixelBudget(100)
    order: list[str] = []
    with budget.take(80):
        def second() -> None:
            with budget.take(50):
                order.append("second")

        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.05)
        assert order == []  # 80 + 50 > 100: it waits
        order.append("first done")
    waiter.join(timeout=5)
    assert order == ["first done", "second"]
    with budget.take(10**9):  # larger than the budget: it runs alone
        assert budget.free == 0
    assert budget.free == 100


def png(data: bytes) -> Any:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_large_regions_render_in_strips_with_the_same_pixels(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{live.base}/webgateway/render_image_region/{live.image}/0/0/"
    params = {"region": "0,0,256,256", "format": "png", "c": "1|0:3000$FF0000,2|0:3000$00FF00"}
    whole = live.http.get(url, params=params | {"q": "0.9"}, timeout=60)
    assert whole.status_code == 200, whole.text
    monkeypatch.setattr(tiles_module, "RENDER_STRIP_PIXELS", 256 * 7)  # 7-row strips
    strips = live.http.get(url, params=params | {"q": "0.8"}, timeout=60)
    assert strips.status_code == 200, strips.text
    assert np.array_equal(png(whole.content), png(strips.content))


def test_tile_sized_renders_in_parallel_are_not_refused(live: Live) -> None:
    """A viewer's burst of small regions (OMERO viewers ask tile= through the webgateway)
    and a portal page's thumbnails stay within the caller's tile-sized limit."""
    region = f"{live.base}/webgateway/render_image_region/{live.image}/0/0/"
    thumb = f"{live.api}/images/{live.image}/thumbnail.png"
    calls = [partial(live.http.get, region, params={"tile": "0,0,0,256,256", "q": f"{q}"})
             for q in (0.41, 0.42, 0.43, 0.44, 0.45, 0.46, 0.47, 0.48)]
    calls += [partial(live.http.get, thumb, params={"max": m}) for m in range(20, 28)]
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda c=c: answers.append(c())) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in answers] == [200] * len(calls)


@pytest.mark.slow
def test_parallel_4096_regions_from_one_caller_keep_memory_bounded(live: Live) -> None:
    image = ingest(live.api, ADMIN, live.incoming, "LIM", "big.ome.tif",
                   SyntheticSpec(size_y=4096, size_x=4096, channels=3, tile=512))
    url = f"{live.base}/webgateway/render_image_region/{image}/0/0/"
    answers: list[httpx.Response] = []

    def region(i: int) -> None:  # distinct qualities: nothing is served from the cache
        answers.append(live.http.get(url, timeout=300,
                                 params={"region": "0,0,4096,4096", "q": f"{0.5 + i / 100}"}))

    with PeakRss() as rss:
        threads = [threading.Thread(target=region, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        t0 = time.perf_counter()
        health = live.http.get(f"{live.api}/health", timeout=30)
        health_wall = time.perf_counter() - t0
        for t in threads:
            t.join()
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {200, 429}, codes
    assert codes.count(429) >= 8 - limits.CALLER_HEAVY_RENDERS, codes
    assert 200 in codes
    for r in answers:
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert "in flight" in one_line_4xx(r)
    assert health.status_code == 200
    assert health_wall < 2.0, health_wall
    # measured: 835 MB of growth without the limits (two cores), about 170 MB with them
    assert rss.growth_mb < 400, rss.growth_mb
    again = live.http.get(url, timeout=300,
                      params={"region": "0,0,4096,4096", "q": "0.3"})
    assert again.status_code == 200  # the caller's slots were given back
