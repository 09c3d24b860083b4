"""A real S3-compatible server on loopback for tests: moto's threaded server on a free port,
started and stopped by the test, reached the way an operator configures plexhub (the standard
AWS variables and ``AWS_ENDPOINT_URL``)."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.net import free_port

AWS = {"AWS_ACCESS_KEY_ID": "plexhub-test", "AWS_SECRET_ACCESS_KEY": "plexhub-test-secret-key",
       "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def s3_server(monkeypatch: pytest.MonkeyPatch, *buckets: str) -> Iterator[str]:
    """A moto S3 server with ``buckets``; yields its endpoint URL. The process's AWS
    variables point at it for the block (and only then)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps its buckets in process-wide memory: start from none
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset",
                                                  method="POST"), timeout=10).close()
    for k, v in {**AWS, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("FSSPEC_S3_ENDPOINT_URL", raising=False)
    fs = filesystem()
    for bucket in buckets:
        fs.mkdir(bucket)
    try:
        yield endpoint
    finally:
        server.stop()


def filesystem() -> Any:
    """An s3fs filesystem on the current endpoint (no instance cache: servers come and go)."""
    import os

    import fsspec

    return fsspec.filesystem("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                             skip_instance_cache=True)


def put_tree(local: Path, url: str) -> None:
    """Upload a file or a folder (an OME-Zarr) to ``url``."""
    fs = filesystem()
    target = url.removeprefix("s3://")
    if local.is_dir():
        for f in sorted(local.rglob("*")):
            if f.is_file():
                fs.pipe_file(f"{target}/{f.relative_to(local).as_posix()}", f.read_bytes())
    else:
        fs.pipe_file(target, local.read_bytes())


def objects(url: str) -> dict[str, bytes]:
    """Every object under ``url``, by key relative to it."""
    fs = filesystem()
    base = url.removeprefix("s3://").rstrip("/")
    return {name[len(base) + 1:]: bytes(fs.cat_file(name)) for name in sorted(fs.find(base))}


def files(folder: Path) -> dict[str, bytes]:
    return {f.relative_to(folder).as_posix(): f.read_bytes()
            for f in sorted(folder.rglob("*")) if f.is_file()}
