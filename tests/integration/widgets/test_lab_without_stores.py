"""Lab servers need no store volume (issue 15; ``hub/k8s/values.yaml`` mounts none): with the
stores on an object store, a kernel that has neither the stores' folder nor any storage
settings or credentials opens an image of the API with the notebook viewer, as the Studies
panel's viewer cell does (``Viewer(image_id)``), and reads raw pixels and a rendered tile,
all through the API over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from plexhub.client import ApiClient
from plexhub.ome_pipeline.synthetic import SyntheticSpec, render_tile
from plexhub.settings import Settings
from tests.helpers.httpapi import ingest
from tests.helpers.s3 import s3_server
from tests.helpers.server import running_server

ADMIN = "admin-token-for-lab-without-stores"
SPEC = SyntheticSpec(size_y=300, size_x=400, channels=3, tile=128, seed=6)
KERNEL = """
import json, sys
import numpy as np
from plexhub.widgets import Viewer
v = Viewer(sys.argv[1])  # the Studies panel's viewer cell: the API from PLEXHUB_API_URL
raw = v.source.read(0, [1], slice(40, 140), slice(60, 260))
tile = v.source.client.request("GET", f"/images/{sys.argv[1]}/tiles/0/0/0.png",
                               what="a tile").content
print(json.dumps({"raw": np.asarray(raw).tolist(), "tile": tile[:8].hex()}))
"""


@pytest.mark.s3
def test_a_kernel_without_stores_or_storage_credentials_reads_pixels_through_the_api(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with s3_server(monkeypatch, "plexhub-stores"):
        settings = Settings(data_dir=tmp_path / "api", admin_token=SecretStr(ADMIN),
                            chunk_size=128, block_size=256,
                            store_root="s3://plexhub-stores/lab")
        incoming = tmp_path / "api" / "incoming"
        incoming.mkdir(parents=True)
        with running_server(settings) as base:
            with ApiClient(base, ADMIN) as api:
                api.create_study("LAB", "Lab study", "acme")
                image_id = ingest(base, ADMIN, incoming, "LAB", "slide.ome.tif", SPEC)
                token = str(api.create_token("ana", "analyst")["token"])
            assert not list((tmp_path / "api").rglob("*.zarr")), "the store is on S3 only"
            lab = tmp_path / "lab"  # a Lab pod's own folder: no stores in it
            lab.mkdir()
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("AWS_", "FSSPEC_", "PLEXHUB_", "JUPYTERHUB_"))}
            env.update({"PLEXHUB_API_URL": base, "PLEXHUB_API_TOKEN": token,
                        "PLEXHUB_DATA_DIR": str(lab), "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": str(lab / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(lab / "none")})
            done = subprocess.run([sys.executable, "-c", KERNEL, image_id], env=env,
                                  cwd=lab, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert np.array_equal(np.asarray(got["raw"])[0], render_tile(SPEC, 1, 40, 60, 100, 200))
    assert got["tile"] == b"\x89PNG\r\n\x1a\n".hex()
    assert not [p for p in lab.rglob("*") if p.name != "none"], "the kernel wrote nothing"
