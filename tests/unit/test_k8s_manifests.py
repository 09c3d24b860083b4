"""The Kubernetes files (hub/k8s/) against the code: every ``PLEXHUB_*`` variable they set is a
setting with a valid value, secrets only by reference, the names that tie the pieces together
agree, and the hub's ``extraConfig`` runs. Nothing is built or deployed here."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from plexhub.hub import config as hubconfig
from plexhub.hub.auth import PlexhubAuthenticator
from plexhub.settings import Settings

K8S = Path(__file__).resolve().parents[2] / "hub" / "k8s"
DOCKERFILE = K8S / "Dockerfile"
# names that hold a secret: only ever from a Secret (valueFrom.secretKeyRef, secretRef)
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|_KEY|DATABASE_URL|CREDENTIAL")
SECRET_FIELDS = {f"PLEXHUB_{name.upper()}" for name, field in Settings.model_fields.items()
                 if "SecretStr" in str(field.annotation)} | {"PLEXHUB_DATABASE_URL"}


def _documents() -> dict[str, list[dict[str, Any]]]:
    docs = {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
            for p in sorted(K8S.glob("*.yaml"))}
    assert set(docs) >= {"values.yaml", "api.yaml", "worker.yaml", "dask.yaml", "config.yaml",
                         "storage.yaml", "kustomization.yaml"}
    return docs


def _env(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every environment variable set anywhere in ``node``: (name, entry), the entry being
    ``{"value": ...}`` or ``{"valueFrom": ...}`` (k8s EnvVar lists, the chart's extraEnv dicts
    and ConfigMap data alike)."""
    if isinstance(node, dict):
        if node.get("kind") == "ConfigMap":
            for name, value in (node.get("data") or {}).items():
                yield name, {"value": value}
        for key, child in node.items():
            if key in ("env", "extraEnv"):
                if isinstance(child, list):
                    for entry in child:
                        yield entry["name"], entry
                else:
                    for name, value in child.items():
                        yield name, value if isinstance(value, dict) else {"value": value}
            else:
                yield from _env(child)
    elif isinstance(node, list):
        for child in node:
            yield from _env(child)


def _dockerfile_env() -> dict[str, str]:
    """The ENV lines of the Dockerfile (continuations joined), KEY=VALUE pairs."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "ENV":
            for pair in parts[1:]:
                name, sep, value = pair.partition("=")
                assert sep, f"ENV {pair}: use KEY=VALUE"
                env[name] = value
    assert env, "the Dockerfile sets no ENV"
    return env


def _all_env() -> list[tuple[str, str, dict[str, Any]]]:
    found = [(file, name, entry) for file, docs in _documents().items()
             for name, entry in _env(docs)]
    found += [("Dockerfile", name, {"value": value})
              for name, value in _dockerfile_env().items()]
    return found


def test_every_plexhub_variable_is_a_setting() -> None:
    fields = {f"PLEXHUB_{name.upper()}" for name in Settings.model_fields}
    used = {(file, name) for file, name, _ in _all_env() if name.startswith("PLEXHUB_")}
    assert len(used) >= 10
    assert sorted((f, n) for f, n in used if n not in fields) == []


def test_literal_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file's literal PLEXHUB_* values, as the pods read them, pass Settings' checks."""
    by_file: dict[str, dict[str, str]] = {}
    for file, name, entry in _all_env():
        if name.startswith("PLEXHUB_") and "value" in entry:
            assert isinstance(entry["value"], str), f"{file}: {name} must be a string"
            by_file.setdefault(file, {})[name] = entry["value"]
    for file, values in by_file.items():
        with monkeypatch.context() as m:
            for name in [n for n in os.environ if n.startswith("PLEXHUB_")]:
                m.delenv(name)
            for name, value in values.items():
                m.setenv(name, value)
            settings = Settings()
            assert settings.model_dump(), file


def test_secrets_only_by_reference() -> None:
    for file, name, entry in _all_env():
        if name in SECRET_FIELDS or SECRET_NAME.search(name):
            assert "value" not in entry, f"{file}: {name} has an inline value"
            assert "secretKeyRef" in entry.get("valueFrom", {}), \
                f"{file}: {name} must come from a Secret"
    for file, docs in _documents().items():
        assert all(d.get("kind") != "Secret" for d in docs), f"{file} holds a Secret"
    values = (K8S / "values.yaml").read_text()
    for key in ("apiToken", "api_token", "password", "client_secret", "secretToken",
                "cookieSecret"):
        assert not re.search(rf"^\s*{key}\s*:", values, re.MULTILINE), key


def _workloads() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for file, docs in _documents().items()
            if file != "values.yaml" for d in docs if d.get("kind") == "Deployment"}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _secret_ref(entries: list[dict[str, Any]], name: str) -> tuple[str, str]:
    entry = next(e for e in entries if e["name"] == name)
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def test_the_pieces_agree() -> None:
    docs = _documents()
    workloads = _workloads()
    config = next(d for d in docs["config.yaml"] if d["kind"] == "ConfigMap")["data"]
    services = {d["metadata"]["name"]: d for ds in docs.values() for d in ds
                if d.get("kind") == "Service"}

    api = _container(workloads["plexhub-api"])
    assert api["args"][0] == "serve"
    assert "--no-jobs" in api["args"]
    assert api["args"][api["args"].index("--root-path") + 1] == hubconfig.SERVICE_PREFIX
    assert {"name": "PLEXHUB_RUN_JOBS", "value": "false"} in api["env"]
    assert workloads["plexhub-api"]["spec"]["replicas"] >= 2
    init = workloads["plexhub-api"]["spec"]["template"]["spec"]["initContainers"]
    assert [c["args"] for c in init] == [["migrate"]]
    port = int(api["args"][api["args"].index("--port") + 1])
    assert services["plexhub-api"]["spec"]["ports"][0]["port"] == port

    worker = _container(workloads["plexhub-worker"])
    assert worker["args"] == ["worker"]
    for name in ("plexhub-api", "plexhub-worker"):
        entries = _container(workloads[name])["env"]
        assert _secret_ref(entries, "PLEXHUB_DATABASE_URL") == ("plexhub-secrets",
                                                                "database-url")
        assert {"configMapRef": {"name": "plexhub-config"}} in \
            _container(workloads[name])["envFrom"]

    # stores on object storage; every pod that reads or writes them has the S3 credentials
    assert str(Settings(store_root=config["PLEXHUB_STORE_ROOT"]).store_root).startswith("s3://")
    for name in ("plexhub-api", "plexhub-worker", "plexhub-dask-worker"):
        assert {"secretRef": {"name": "plexhub-s3"}} in _container(workloads[name])["envFrom"]

    scheduler = config["PLEXHUB_DASK_SCHEDULER"]
    host, _, sport = scheduler.removeprefix("tcp://").partition(":")
    assert any(p["port"] == int(sport) for p in services[host]["spec"]["ports"])
    dask_worker = _container(workloads["plexhub-dask-worker"])
    assert dask_worker["args"][0] == scheduler

    # the hub registers the service with the token the API presents as JUPYTERHUB_API_TOKEN
    hub = yaml.safe_load((K8S / "values.yaml").read_text())["hub"]
    assert _secret_ref(hub["extraEnv"], "HUB_SERVICE_TOKEN_PLEXHUB") == \
        _secret_ref(api["env"], "JUPYTERHUB_API_TOKEN")
    assert f"http://plexhub-api:{port}" in hub["extraConfig"]["plexhub"]

    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"values.yaml",
                                                            "kustomization.yaml"}


def test_the_hub_extra_config_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """values.yaml's extraConfig, run as the chart runs it (``c`` in scope), with the hub's
    extraEnv (paths moved under tmp_path, the token a stand-in)."""
    values = yaml.safe_load((K8S / "values.yaml").read_text())["hub"]
    for entry in values["extraEnv"]:
        if "value" in entry:
            monkeypatch.setenv(entry["name"], entry["value"])
    monkeypatch.setenv("PLEXHUB_DATA_DIR", str(tmp_path / "hubdata"))
    monkeypatch.setenv("PLEXHUB_HUB_USERS_FILE", str(tmp_path / "users.json"))
    monkeypatch.setenv("HUB_SERVICE_TOKEN_PLEXHUB", "a-stand-in-for-the-secret")
    c = Config()
    exec(values["extraConfig"]["plexhub"], {"c": c})  # our own file, as the chart runs it

    assert c.JupyterHub.authenticator_class is PlexhubAuthenticator
    assert c.PlexhubAuthenticator.users_file == str(tmp_path / "users.json")
    assert c.PlexhubAuthenticator.lockout_dir == str(tmp_path / "hubdata" / "hub")
    assert (tmp_path / "hubdata" / "hub").is_dir()
    assert c.JupyterHub.load_roles == hubconfig.roles()
    assert c.JupyterHub.default_url is hubconfig.landing_url
    assert c.KubeSpawner.args == hubconfig.spawner_args()
    assert "spawner_class" not in c.JupyterHub  # the chart's KubeSpawner
    [service] = c.JupyterHub.services
    assert service == {"name": "plexhub", "url": "http://plexhub-api:8765",
                       "api_token": "a-stand-in-for-the-secret", **hubconfig.SERVICE_OAUTH}
    assert "command" not in service  # external: its own Deployment


def test_lab_servers_reach_images_through_the_api_only() -> None:
    """With the stores on object storage, single-user servers get no store volume and no
    storage credentials, only the API's address (the viewer, the Studies panel and napari
    read pixels through it: tests/integration/widgets/test_lab_without_stores.py), and the
    shipped notebooks never open the stores' folder."""
    config = next(d for d in _documents()["config.yaml"] if d["kind"] == "ConfigMap")["data"]
    assert str(Settings(store_root=config["PLEXHUB_STORE_ROOT"]).store_root).startswith("s3://")
    single = yaml.safe_load((K8S / "values.yaml").read_text())["singleuser"]
    storage = single.get("storage") or {}
    mounted = [*storage.get("extraVolumes", []), *storage.get("extraVolumeMounts", []),
               *single.get("extraVolumes", []), *single.get("extraVolumeMounts", [])]
    assert not [v for v in mounted if "stores" in str(v) or "plexhub-data" in str(v)], mounted
    env = single.get("extraEnv") or {}
    assert str(env["PLEXHUB_API_URL"]).endswith(hubconfig.SERVICE_PREFIX)
    assert not [n for n in env if n.startswith(("AWS_", "FSSPEC_")) or SECRET_NAME.search(n)]
    assert "plexhub-s3" not in str(single)
    assert "PLEXHUB_STORE_ROOT" not in str(single)
    notebooks = sorted((K8S.parents[1] / "notebooks").glob("*.ipynb"))
    assert notebooks
    for nb in notebooks:
        code = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
                       if c["cell_type"] == "code")
        for needle in ("/data/stores", "stores_dir", "PLEXHUB_STORE_ROOT", "store_root"):
            assert needle not in code, f"{nb.name} opens the stores directly ({needle})"
