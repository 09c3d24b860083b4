"""What JupyterLab's plexhub extension asks of the API: the unfinished jobs a caller may see
(``GET /api/v1/jobs``, the status bar's list), and ingest from a user's own folder
(``PLEXHUB_INGEST_USER_ROOT``, the hub's homes), never from another user's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pydantic import ValidationError as SettingsError

from plexhub.api.main import create_app
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.api import ADMIN, Api


def test_unfinished_jobs_are_listed_for_the_studies_the_caller_sees(api: Api) -> None:
    api.study("S001")
    api.study("S002")
    write_ome_tiff(api.incoming / "big.ome.tif",
                   SyntheticSpec(size_y=1024, size_x=1024, channels=3, tile=256))
    write_ome_tiff(api.incoming / "second.ome.tif",
                   SyntheticSpec(size_y=256, size_x=256, channels=1, tile=128, seed=4))
    first = api.post("/api/v1/studies/S001/images", {"source": "big.ome.tif"}).json()
    second = api.post("/api/v1/studies/S002/images", {"source": "second.ome.tif"}).json()
    listed = api.get("/api/v1/jobs")
    assert listed.status_code == 200, listed.text
    jobs = listed.json()
    # one job runs at a time: both are unfinished now (the first may be running)
    assert [j["id"] for j in jobs] == [first["job_id"], second["job_id"]]
    assert {j["state"] for j in jobs} <= {"queued", "running"}
    assert [j["study"] for j in jobs] == ["S001", "S002"]
    assert jobs[0]["source"].endswith("big.ome.tif")

    sponsor = api.token("sue", "sponsor")
    assert api.get("/api/v1/jobs", sponsor).json() == []  # no grant: no study, no job
    api.post("/api/v1/studies/S002/grants", {"principal": "user:sue", "capabilities": ["view"]})
    seen = api.get("/api/v1/jobs", sponsor).json()
    assert [j["id"] for j in seen] == [second["job_id"]]
    assert "incoming" not in seen[0]["source"]  # sponsors never get the source path
    assert api.get("/api/v1/jobs", "not-a-token").status_code == 401

    assert api.post(f"/api/v1/jobs/{second['job_id']}/cancel").status_code == 200
    assert api.wait_job(first["job_id"])["state"] == "done"
    assert api.get("/api/v1/jobs").json() == []  # finished and cancelled jobs are not listed


@pytest.fixture
def homes_api(tmp_path: Path) -> Iterator[tuple[Api, Path]]:
    homes = tmp_path / "homes"
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN),
                        chunk_size=64, block_size=128,
                        ingest_user_root=str(homes / "{user}"))
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    with TestClient(create_app(settings, migrate=True)) as client:
        yield Api(client, settings, incoming), homes


def test_a_user_ingests_from_their_own_folder_only(homes_api: tuple[Api, Path]) -> None:
    api, homes = homes_api
    api.study("S001")
    sam, bob = api.token("sam", "scientist"), api.token("bob", "scientist")
    (homes / "sam" / "slides").mkdir(parents=True)
    (homes / "bob").mkdir(parents=True)
    mine = homes / "sam" / "slides" / "mine.ome.tif"
    write_ome_tiff(mine, SyntheticSpec(size_y=128, size_x=128, channels=2, tile=64))
    theirs = homes / "bob" / "theirs.ome.tif"
    write_ome_tiff(theirs, SyntheticSpec(size_y=128, size_x=128, channels=2, tile=64, seed=9))

    r = api.post("/api/v1/studies/S001/images", {"source": str(mine)}, sam)
    assert r.status_code == 202, r.text
    assert api.wait_job(r.json()["job_id"], token=sam)["state"] == "done"
    # its original stays downloadable from there (staff), as from an ingest root
    original = api.get(f"/api/v1/images/{r.json()['image_id']}/original", bob)
    assert original.status_code == 200, original.text
    assert original.content == mine.read_bytes()
    # another user's folder, by path or through a link in one's own: refused
    (homes / "sam" / "link.ome.tif").symlink_to(theirs)
    for source in (str(theirs), str(homes / "sam" / "link.ome.tif"),
                   str(homes / "sam" / ".." / "bob" / "theirs.ome.tif")):
        r = api.post("/api/v1/studies/S001/images", {"source": source}, sam)
        assert r.status_code == 403, (source, r.text)
        assert "PLEXHUB_INGEST_ROOTS" in r.json()["detail"]
    # the admin token's user has no such folder: the homes are no ingest root for it
    assert api.post("/api/v1/studies/S001/images", {"source": str(theirs)}).status_code == 403
    # bob's own file is bob's to ingest; a batch from his folder works the same way
    r = api.post("/api/v1/studies/S001/images:batch", {"folder": str(homes / "bob")}, bob)
    assert r.status_code == 202, r.text
    assert api.wait_job(r.json()[0]["job_id"], token=bob)["state"] == "done"
    assert api.post("/api/v1/studies/S001/images:batch",
                    {"folder": str(homes / "sam" / "slides")}, bob).status_code == 403


def test_the_user_folder_setting_must_name_the_user(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="must contain"):
        Settings(data_dir=tmp_path, ingest_user_root=str(tmp_path / "homes"))
    s = Settings(data_dir=tmp_path, ingest_user_root="/srv/homes/{user}/data")
    assert s.ingest_roots_of("sam")[-1] == "/srv/homes/sam/data"
    for odd in ("", ".", "..", "a/b", "x\x00"):
        assert s.ingest_roots_of(odd) == s.ingest_root_list, odd
    assert Settings(data_dir=tmp_path).ingest_roots_of("sam") == \
        Settings(data_dir=tmp_path).ingest_root_list
