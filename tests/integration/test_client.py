"""plexhub.client against a real API (uvicorn on 127.0.0.1): the calls the viewers, plexhub
publish and plexhub up make, waiting for jobs and for health, and the errors a user sees
when the API is not there, refuses the token or does not know the thing."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from plexhub.api.publish_cli import add_arguments, cmd_publish
from plexhub.client import (
    ApiClient,
    ApiConflictError,
    ApiError,
    ApiInputError,
    ApiNotFoundError,
    ApiPermissionError,
    ApiTimeoutError,
    ApiUnreachableError,
    Job,
    wait_healthy,
)
from plexhub.errors import ConflictError, InputError, NotFoundError, PermissionDeniedError
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.live_api import ADMIN, live_api
from tests.helpers.net import free_port
from tests.helpers.sample_data import notebook


@dataclass
class Server:
    base: str
    incoming: Path
    image_id: str = ""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real API with the study CLI (and the viewer tests' study VIEW with one image)."""
    with live_api(tmp_path_factory.mktemp("client"), size=(128, 128), channels=2) as live:
        with ApiClient(live.base, ADMIN) as api:
            api.create_study("CLI", "Client study", "acme")
        yield Server(live.base, live.data_dir / "incoming", live.image_id)


@pytest.fixture
def admin(server: Server) -> Iterator[ApiClient]:
    with ApiClient(server.base, ADMIN) as client:
        yield client


def raw_detail(server: Server, path: str, token: str) -> str:
    """The API's own ``detail`` for ``GET path``, read without the client."""
    r = httpx.get(f"{server.base}/api/v1{path}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code >= 400
    return str(r.json()["detail"])


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


def test_health_and_the_forms_of_the_url(server: Server) -> None:
    for url in (server.base, server.base + "/", server.base + "/api/v1",
                server.base + "/api/v1/"):
        with ApiClient(url) as client:
            assert client.base_url == server.base
            assert client.health() == {"status": "ok"}
    wait_healthy(server.base, 5)


def test_ingest_and_wait_for_job_with_progress(admin: ApiClient, server: Server) -> None:
    write_ome_tiff(server.incoming / "a.ome.tif",
                   SyntheticSpec(size_y=256, size_x=256, channels=2, tile=64, seed=1))
    accepted = admin.ingest("CLI", "a.ome.tif", {"animal_id": "A1"})
    seen: list[Job] = []
    job = admin.wait_for_job(accepted["job_id"], 120, seen.append, interval=0.05)
    assert job["state"] == "done", job
    assert job["id"] == accepted["job_id"]
    assert seen
    assert seen[-1] == job
    assert all(j["id"] == job["id"] for j in seen)
    assert [p["id"] for p in admin.images("CLI")].count(accepted["image_id"]) == 1
    assert admin.image(accepted["image_id"])["id"] == accepted["image_id"]
    # the same file again is idempotent: the finished job comes back at once
    again = admin.ingest("CLI", "a.ome.tif", {"animal_id": "A1"})
    assert again["existing"] is True
    assert admin.wait_for_job(again["job_id"], 5)["state"] == "done"


def test_wait_for_job_past_its_timeout(admin: ApiClient, server: Server) -> None:
    write_ome_tiff(server.incoming / "big.ome.tif",
                   SyntheticSpec(size_y=1024, size_x=1024, channels=3, tile=256, seed=2))
    job_id = admin.ingest("CLI", "big.ome.tif")["job_id"]
    with pytest.raises(ApiTimeoutError, match=f"job {job_id}: still (queued|running)") as err:
        admin.wait_for_job(job_id, timeout=0)
    assert isinstance(err.value, TimeoutError)
    one_line(err.value)
    assert admin.wait_for_job(job_id, 300, interval=0.1)["state"] == "done"


def test_a_wrong_token_is_a_401_with_the_apis_message(server: Server) -> None:
    with ApiClient(server.base, "not-a-token") as client, \
            pytest.raises(ApiPermissionError) as err:
        client.images("CLI")
    e = err.value
    assert isinstance(e, PermissionDeniedError)
    assert isinstance(e, ApiError)
    assert e.status == 401
    assert e.detail == raw_detail(server, "/studies/CLI/images", "not-a-token")
    assert e.url == f"{server.base}/api/v1/studies/CLI/images"
    text = one_line(e)
    assert text.startswith("images of study CLI: the API answered 401 unauthorized: ")
    assert e.detail in text
    assert "PLEXHUB_API_TOKEN" in text


def test_an_unknown_thing_is_a_404_with_the_apis_message(admin: ApiClient,
                                                         server: Server) -> None:
    with pytest.raises(ApiNotFoundError) as err:
        admin.image("no-such-image")
    e = err.value
    assert isinstance(e, NotFoundError)
    assert isinstance(e, LookupError)
    assert e.status == 404
    assert e.detail == raw_detail(server, "/images/no-such-image", ADMIN)
    assert one_line(e).startswith("image no-such-image: the API answered 404 not found: ")
    with pytest.raises(ApiNotFoundError, match="job nope"):
        admin.wait_for_job("nope", 5)


def test_conflicts_and_bad_input(admin: ApiClient) -> None:
    with pytest.raises(ApiConflictError) as conflict:
        admin.create_study("CLI", "again", "acme")
    assert isinstance(conflict.value, ConflictError)
    assert conflict.value.status == 409
    assert admin.create_study("CLI", "again", "acme", exist_ok=True) is None
    with pytest.raises(ApiInputError) as bad:
        admin.create_study("BAD", "bad profile", "acme", profile="no-such-profile")
    assert isinstance(bad.value, InputError)
    assert bad.value.status == 422
    assert "profile" in bad.value.detail
    one_line(bad.value)


def test_an_unreachable_api_is_one_line_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/plexhub"
    with ApiClient(url, "t") as client, pytest.raises(ApiUnreachableError) as err:
        client.health()
    e = err.value
    assert isinstance(e, ConnectionError)
    assert e.status is None
    assert one_line(e).startswith(f"the API at {url}: cannot be reached (")
    assert "PLEXHUB_API_URL" in str(e)


def test_wait_healthy_names_the_url_and_the_reason() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiTimeoutError,
                       match=re.escape(f"the API at {url}: not healthy after 0.2 s")):
        wait_healthy(url, 0.2)
    with pytest.raises(ApiUnreachableError,
                       match=re.escape(f"the API at {url}: did not start: gone")):
        wait_healthy(url, 30, lambda: "gone")


def test_publish_to_an_unreachable_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    path = tmp_path / "qc.ipynb"
    path.write_text(json.dumps(notebook()))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    url = f"http://127.0.0.1:{free_port()}"
    args = parser.parse_args([str(path), "--study", "S1", "--api", url, "--token", "t"])
    with pytest.raises(ApiUnreachableError) as err:
        cmd_publish(args)
    assert one_line(err.value).startswith(f"the API at {url}: cannot be reached")
    assert capsys.readouterr().out == ""


def test_publish_without_an_api_says_what_to_set(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PLEXHUB_API_URL", "PLEXHUB_API_TOKEN", "JUPYTERHUB_SERVICE_PREFIX"):
        monkeypatch.delenv(key, raising=False)
    path = tmp_path / "qc.ipynb"
    path.write_text(json.dumps(notebook()))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(InputError, match=r"the API URL: is not known .*PLEXHUB_API_URL"):
        cmd_publish(parser.parse_args([str(path), "--study", "S1"]))
    with pytest.raises(InputError, match="the API token: is not known"):
        cmd_publish(parser.parse_args([str(path), "--study", "S1", "--api", "http://x:1"]))


def _audit(admin: ApiClient, study: str) -> list[dict[str, object]]:
    return list(admin.get_json("/audit", params={"study": study, "limit": 1000}))


@pytest.mark.requirement("reason.clients")
def test_the_client_sends_reasons_and_signatures(admin: ApiClient, server: Server) -> None:
    doc = {"name": "client-reason", "channels": [{"label": "c0", "color": "FF0000",
                                                  "window": {"start": 0, "end": 100}}]}
    saved = admin.save_preset(server.image_id, doc, reason="QC: Zürich batch 2")
    events = [e for e in _audit(admin, "VIEW") if e["action"] == "preset.save"]
    assert events[-1]["reason"] == "QC: Zürich batch 2"  # percent-encoded on the way
    admin.create_study("CGLP", "GLP via client", "acme", profile="glp")
    with pytest.raises(ApiInputError, match="credential: is required"):
        admin.lock_study("CGLP", reason="final")
    with pytest.raises(ApiPermissionError, match="refused: the token is not yours"):
        admin.lock_study("CGLP", reason="final", credential="not-my-token")
    locked = admin.lock_study("CGLP", reason="final", credential=ADMIN)
    assert locked["state"] == "locked"
    assert [s["meaning"] for s in admin.signatures("CGLP")] == ["approved"]
    unlocked = admin.unlock_study("CGLP", reason="amend", credential=ADMIN)
    assert [s["action"] for s in unlocked["signatures"]] == ["study.lock", "study.unlock"]
    assert saved["version"] == 1


@pytest.mark.requirement("reason.clients")
def test_publish_asks_for_what_a_glp_study_needs(tmp_path: Path, admin: ApiClient,
                                                 server: Server,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import io

    admin.create_study("PGLP", "GLP publish", "acme", profile="glp", exist_ok=True)
    path = tmp_path / "qc.ipynb"
    path.write_text(json.dumps(notebook()))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = [str(path), "--study", "PGLP", "--api", server.base, "--token", ADMIN]
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: nothing is asked
    with pytest.raises(ApiInputError, match="reason: is required"):
        cmd_publish(parser.parse_args(base))
    with pytest.raises(ApiInputError, match="credential: is required"):
        cmd_publish(parser.parse_args([*base, "--reason", "final report"]))
    monkeypatch.setattr("sys.stdin", io.StringIO(ADMIN + "\n"))  # --sign reads stdin
    assert cmd_publish(parser.parse_args([*base, "--reason", "final report", "--sign"])) == 0
    assert capsys.readouterr().out.startswith("published PGLP/qc version 1")
    events = [e for e in _audit(admin, "PGLP") if e["action"] in ("signature.sign",
                                                                  "notebook.publish")]
    assert [(e["action"], e["reason"]) for e in events] == [
        ("signature.sign", "final report"), ("notebook.publish", "final report")]
