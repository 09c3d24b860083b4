"""Job states are one enum (plexhub.model.JobState, which the catalog, the API and the client
share): the API document lists exactly its values, and a job's state reads and serialises as
the same text as before."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from plexhub import client
from plexhub.api.models import FINISHED, JobState
from plexhub.api.schemas import JobPublic

JOB = {"id": "j1", "progress": 1.0, "error": None, "study": "S001", "source": "a.tif",
       "image_ids": [], "created_at": datetime(2024, 1, 1, tzinfo=UTC), "started_at": None,
       "finished_at": None}


def test_the_states_are_the_text_the_catalog_and_the_api_always_held() -> None:
    assert [s.value for s in JobState] == ["queued", "running", "done", "failed", "cancelled"]
    assert {"done", "failed", "cancelled"} == FINISHED
    assert client.FINISHED is FINISHED  # the client waits for the same states
    assert "done" in client.FINISHED  # as a job document's text
    schema = JobPublic.model_json_schema()
    assert schema["$defs"]["JobState"]["enum"] == [s.value for s in JobState]


def test_a_stored_state_reads_as_the_enum_and_is_written_out_as_text() -> None:
    job = JobPublic.model_validate({**JOB, "state": "done"})  # as the column holds it
    assert job.state is JobState.DONE
    assert job.model_dump(mode="json")["state"] == "done"
    with pytest.raises(ValidationError, match="queued"):
        JobPublic.model_validate({**JOB, "state": "finished"})
