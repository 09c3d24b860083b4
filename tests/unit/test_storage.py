"""plexhub.storage: URLs kept whole (never collapsed by pathlib), confinement by whole names,
storage options that never show a secret."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from plexhub.errors import InputError, PermissionDeniedError
from plexhub.settings import Settings
from plexhub.storage import (
    StorageOptions,
    forget_credentials,
    forwarding_credentials,
    is_url,
    parse_url,
    storage_options,
)


def test_urls_are_parsed_by_whole_names() -> None:
    root = parse_url("s3://incoming")
    assert parse_url("s3://incoming/x.ome.tif").inside(root)
    assert parse_url("S3://incoming/a/b/").url == "s3://incoming/a/b"
    assert not parse_url("s3://incoming2/x").inside(root)
    assert not parse_url("gs://incoming/x").inside(root)
    for bad in ("s3://incoming/../x", "s3://incoming/./x", "s3://incoming//x"):
        with pytest.raises(PermissionDeniedError):
            parse_url(bad)
    for bad in ("s3://k:s@incoming/x", "s3://incoming/x?versionId=1", "s3:///x"):
        with pytest.raises(InputError):
            parse_url(bad)
    assert is_url("s3://a/b")
    assert not is_url("file:///a/b")
    assert not is_url("/a/b")


def test_storage_options_never_show_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-key")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("FSSPEC_S3_ENDPOINT_URL", raising=False)
    forget_credentials()
    opts = storage_options("s3://b/k", credentials=True)
    assert opts.options == {"endpoint_url": "http://127.0.0.1:9"}  # nothing frozen here
    with forwarding_credentials():  # what a Dask submission sends
        sent = pickle.loads(pickle.dumps(opts))
    assert sent.options["endpoint_url"] == "http://127.0.0.1:9"
    assert sent.options["secret"] == "very-secret-key"  # handed over, explicitly
    for shown in (opts, sent):
        for text in (repr(shown), str(shown), f"{shown}", repr([shown])):
            assert "very-secret-key" not in text
            assert "AKIDEXAMPLE" not in text
    assert pickle.loads(pickle.dumps(opts)) == opts  # outside a submission: no credentials
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", "http://127.0.0.1:10")
    assert storage_options("s3://b/k").options == {"endpoint_url": "http://127.0.0.1:10"}
    assert StorageOptions("file").options == {}


def test_forwarded_credentials_are_resolved_again_at_each_submission(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rotated credentials reach the next submission (after the TTL, or at once once
    forgotten); with forwarding off, and in options made without ``credentials``, none."""
    import plexhub.storage as storage

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFIRST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "first-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    forget_credentials()
    opts = storage_options("s3://b/k", credentials=True)
    with forwarding_credentials():
        assert pickle.loads(pickle.dumps(opts)).options["key"] == "AKIDFIRST"
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSECOND")  # rotated
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "second-secret")
        assert pickle.loads(pickle.dumps(opts)).options["key"] == "AKIDFIRST"  # within TTL
        monkeypatch.setattr(storage, "CREDENTIALS_TTL", 0.0)
        sent = pickle.loads(pickle.dumps(opts)).options
        assert (sent["key"], sent["secret"]) == ("AKIDSECOND", "second-secret")
    with forwarding_credentials(False):  # workers with their own credentials
        assert "key" not in pickle.loads(pickle.dumps(opts)).options
    with forwarding_credentials():
        assert "key" not in pickle.loads(pickle.dumps(storage_options("s3://b/k"))).options


def test_the_store_root_setting() -> None:
    assert Settings(data_dir=Path("d")).store_root_url.endswith("/d/stores")
    s3 = Settings(store_root="s3://bucket/prefix/")
    assert s3.store_root_url == "s3://bucket/prefix"
    assert Settings(store_root="/srv/stores").stores_dir.as_posix() == "/srv/stores"


def test_a_bad_store_root_is_refused_naming_the_setting() -> None:
    from pydantic import ValidationError

    for bad in ("s3://", "s3://key:secret@bucket/p", "s3://bucket/../p"):
        with pytest.raises(ValidationError, match="PLEXHUB_STORE_ROOT"):
            Settings(store_root=bad)
