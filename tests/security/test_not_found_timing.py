"""A study (or image, or job) that exists but is not the caller's answers its 404 after the
same work as one that does not exist: the time of the answer does not tell them apart.

Two proofs, on SQLite through TestClient. The exact one: both kinds run the same SQL
statements. The measured one: requests of the two kinds interleaved (shuffled within each
pair), the process's CPU time per request (time that other processes on a busy machine take
is not counted, so the medians stay put under load) and the medians compared with a
tolerance of 0.3 ms. Before the fix the foreign case loaded the study, its grants and the
image or job, 0.6-2.2 ms more here; after it the gap is noise around zero (±0.2 ms at a load
of 7 on two cores). A measurement over the tolerance is repeated, up to three times in all,
before it counts: noise does not repeat, a real gap does."""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import event

from plexhub.api.main import create_app
from plexhub.api.models import Image, Job, Study
from plexhub.settings import Settings
from tests.helpers.api import ADMIN

PAIRS = 200
WARM_UP = 30
TOLERANCE_MS = 0.3
ATTEMPTS = 3


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("timing") / "data",
                        admin_token=SecretStr(ADMIN))
    with TestClient(create_app(settings, migrate=True)) as c:
        yield c


def _seed(client: TestClient) -> tuple[str, str, str]:
    """A study with an image and a job, granted to no one but another sponsor (so that its
    grants are looked up and refused); returns a sponsor token, the image and the job id."""
    h = {"Authorization": f"Bearer {ADMIN}"}
    assert client.post("/api/v1/studies", headers=h, json={
        "code": "FOREIGN", "title": "t", "sponsor": "globex"}).status_code == 201
    for i in range(3):
        assert client.post("/api/v1/studies/FOREIGN/grants", headers=h, json={
            "principal": f"group:other{i}", "capabilities": ["view"]}).status_code == 201
    token = client.post("/api/v1/tokens", headers=h, json={
        "user": "spo", "role": "sponsor", "groups": ["acme"]}).json()["token"]
    image_id, job_id = uuid.uuid4().hex, uuid.uuid4().hex
    with client.app.state.plexhub.db.session() as s:  # type: ignore[attr-defined]
        study = s.query(Study).filter_by(code="FOREIGN").one()
        s.add(Job(id=job_id, study_id=study.id, source_uri="x.tif", fingerprint="f" * 64,
                  params={}, created_by="admin", state="failed"))
        s.add(Image(id=image_id, study_id=study.id, name="x", source_uri="x.tif",
                    fingerprint="f" * 64, job_id=job_id))
        s.commit()
    return str(token), image_id, job_id


def _cases(client: TestClient) -> tuple[str, dict[str, tuple[str, str]]]:
    """A sponsor token, and per kind of id the URLs of a foreign and of a missing one."""
    token, image_id, job_id = _seed(client)
    missing = uuid.uuid4().hex
    return token, {
        "study": ("/api/v1/studies/FOREIGN", "/api/v1/studies/NOSUCHSTUDY"),
        "study images": ("/api/v1/studies/FOREIGN/images", "/api/v1/studies/NOSUCH/images"),
        "image": (f"/api/v1/images/{image_id}", f"/api/v1/images/{missing}"),
        "original": (f"/api/v1/images/{image_id}/original",
                     f"/api/v1/images/{missing}/original"),
        "zarr": (f"/api/v1/images/{image_id}/zarr/zarr.json",
                 f"/api/v1/images/{missing}/zarr/zarr.json"),
        "job": (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{missing}"),
    }


@pytest.fixture(scope="module")
def cases(client: TestClient) -> tuple[str, dict[str, tuple[str, str]]]:
    return _cases(client)


def test_a_foreign_id_and_a_missing_one_run_the_same_queries(
        client: TestClient, cases: tuple[str, dict[str, tuple[str, str]]]) -> None:
    token, urls = cases
    h = {"Authorization": f"Bearer {token}"}
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = client.app.state.plexhub.db.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for kind, (foreign, missing) in urls.items():
            run = {}
            for url in (foreign, missing):
                assert client.get(url, headers=h).status_code == 404  # the token is cached
                statements.clear()
                r = client.get(url, headers=h)
                assert r.status_code == 404, r.text
                run[url] = list(statements)
            assert run[foreign] == run[missing], kind
            assert run[foreign], kind  # it did look
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def _median_gap_ms(client: TestClient, token: str, foreign: str, missing: str) -> float:
    """Median CPU time of the process per request, foreign minus missing, in ms."""
    h = {"Authorization": f"Bearer {token}"}
    times: dict[str, list[float]] = {foreign: [], missing: []}
    rng = random.Random(7)
    for i in range(WARM_UP + PAIRS):
        pair = [foreign, missing]
        rng.shuffle(pair)
        for url in pair:
            t0 = time.process_time()
            r = client.get(url, headers=h)
            elapsed = time.process_time() - t0
            assert r.status_code == 404, (url, r.text)
            if i >= WARM_UP:
                times[url].append(elapsed)
    return 1000 * (statistics.median(times[foreign]) - statistics.median(times[missing]))


@pytest.mark.slow
def test_a_foreign_id_and_a_missing_one_take_the_same_time(
        client: TestClient, cases: tuple[str, dict[str, tuple[str, str]]]) -> None:
    token, urls = cases
    kinds = ("study", "image", "job")
    gaps: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(ATTEMPTS):
        for kind in kinds:
            if not gaps[kind] or abs(gaps[kind][-1]) >= TOLERANCE_MS:
                gaps[kind].append(_median_gap_ms(client, token, *urls[kind]))
        if all(abs(g[-1]) < TOLERANCE_MS for g in gaps.values()):
            return
    pytest.fail("a foreign id answers slower (or faster) than a missing one: "
                + ", ".join(f"{k}: {' '.join(f'{g:+.2f}' for g in v)} ms"
                            for k, v in gaps.items()))
