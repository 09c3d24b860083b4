"""A scientist's own JupyterLab kernel never runs with the API service's identity (issue 12).

A real hub (``tests.helpers.hub.running_hub``: JupyterHub, the proxy, the API as a managed
service) run as root, as in CI and containers: the scientist starts a server with their own
token, and code in a kernel of that server (through the Jupyter server's REST API and kernel
websocket, as JupyterLab does) hunts the service's secrets. It runs as its own unprivileged
account, finds none of them, and still reaches the API with the user's own hub token.
"""

from __future__ import annotations

import json
import os
import pwd
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websocket

from plexhub.hub.spawner import account_name
from tests.helpers.hub import ADMIN_TOKEN, OPS_TOKEN, Hub, descendants, running_hub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="servers switch accounts only as root"),
]
SECRET = "analyst-home-secret-0123456789"

HUNT = r'''
import json, os, urllib.request
targets, secrets = json.loads(TARGETS), json.loads(SECRETS)
out = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups()}
reads = {}
for name, path in targets.items():
    try:
        if os.path.isdir(path):
            reads[name] = os.listdir(path)
            continue
        with open(path, "rb") as f:
            data = f.read()
        found = [s for s in secrets if s.encode() in data]
        reads[name] = f"read {len(data)} bytes" + (f", secrets {found}" if found else "")
    except OSError as exc:
        reads[name] = type(exc).__name__
out["reads"] = reads
out["env"] = sorted(os.environ)
out["env_secrets"] = [s for s in secrets if any(s in v for v in os.environ.values())]
seen = []
for pid in (p for p in os.listdir("/proc") if p.isdigit()):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        continue
    seen += [s for s in secrets if s.encode() in data]
out["proc_secrets"] = sorted(set(seen))
request = urllib.request.Request(
    os.environ["PLEXHUB_API_URL"] + "/api/v1/me",
    headers={"Authorization": "Bearer " + os.environ["JUPYTERHUB_API_TOKEN"]})
with urllib.request.urlopen(request, timeout=30) as r:
    out["me"] = json.loads(r.read())
print("RESULT " + json.dumps(out))
'''


def _message(code: str, session: str) -> dict[str, Any]:
    return {"header": {"msg_id": uuid.uuid4().hex, "username": "test", "session": session,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}


def run_in_kernel(hub: Hub, user: str, token: str, code: str) -> str:
    """Start a kernel in ``user``'s server, run ``code``, return what it printed."""
    headers = {"Authorization": f"token {token}"}
    base = f"{hub.base}/user/{user}/api/kernels"
    r = httpx.post(base, headers=headers, json={"name": "python3"}, timeout=60)
    assert r.status_code == 201, r.text
    kernel = r.json()["id"]
    ws = websocket.create_connection(
        base.replace("http://", "ws://") + f"/{kernel}/channels",
        header=[f"Authorization: token {token}"], timeout=120)
    try:
        msg = _message(code, uuid.uuid4().hex)
        ws.send(json.dumps(msg))
        printed, errors = [], []
        while True:
            reply = json.loads(ws.recv())
            if reply.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind = reply["msg_type"]
            if kind == "stream":
                printed.append(reply["content"]["text"])
            elif kind == "error":
                errors.append("\n".join(reply["content"]["traceback"]))
            elif kind == "status" and reply["content"]["execution_state"] == "idle":
                break
        assert not errors, errors
        return "".join(printed)
    finally:
        ws.close()
        httpx.delete(f"{base}/{kernel}", headers=headers, timeout=60)


def start_server(hub: Hub, user: str) -> str:
    """The user starts their own server with their own token; returns that token."""
    token = hub.user_token(user)
    r = hub.hub_api("POST", f"/users/{user}/server", token=token)
    assert r.status_code in (201, 202), r.text
    hub.wait_ready(user)
    return token


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("hubiso")) as h:
        yield h


def test_kernel_cannot_reach_the_service_or_other_users(hub: Hub) -> None:
    procs = descendants(hub.proc.pid)
    service = next(p for p in procs if "serve" in p.cmdline() and "plexhub" in p.cmdline())
    service_uid = service.uids().real
    data = hub.data_dir
    state = data / "hub"

    start_server(hub, "analyst")  # another user with a home and a secret in it
    analyst_home = state / "homes" / "analyst"
    assert analyst_home.is_dir()
    analyst = pwd.getpwnam(account_name("analyst"))
    secret_file = analyst_home / "notes.txt"
    secret_file.write_text(SECRET)
    os.chown(secret_file, analyst.pw_uid, analyst.pw_gid)

    token = start_server(hub, "scientist")
    targets = {
        "service environ": f"/proc/{service.pid}/environ",
        "hub environ": f"/proc/{hub.proc.pid}/environ",
        "catalog": str(data / "catalog.sqlite"),
        "data folder": str(data),
        "hub cookie secret": str(state / "jupyterhub_cookie_secret"),
        "hub database": str(state / "jupyterhub.sqlite"),
        "users file": str(state / "users.json"),
        "homes": str(state / "homes"),
        "analyst's home": str(analyst_home),
        "analyst's file": str(secret_file),
    }
    code = (f"TARGETS = {json.dumps(json.dumps(targets))}\n"
            f"SECRETS = {json.dumps(json.dumps([ADMIN_TOKEN, OPS_TOKEN, SECRET]))}\n" + HUNT)
    printed = run_in_kernel(hub, "scientist", token, code)
    result = json.loads(printed.split("RESULT ", 1)[1])

    # its own unprivileged account: not root, not the service, no groups of theirs
    scientist = pwd.getpwnam(account_name("scientist"))
    assert result["uid"] == result["euid"] == scientist.pw_uid
    assert result["uid"] not in (0, service_uid)
    assert result["gid"] == scientist.pw_gid != 0
    assert result["groups"] in ([], [scientist.pw_gid])
    # none of the service's, the hub's or the other user's files and secrets
    reads = result["reads"]
    denied = {"PermissionError", "FileNotFoundError"}
    for name in ("service environ", "hub environ", "catalog", "hub cookie secret",
                 "hub database", "users file", "analyst's home", "analyst's file"):
        assert reads[name] in denied, (name, reads[name])
    # the data folder and the homes are stand-ins (or closed): they hold only the way home
    for name, allowed in (("data folder", {"hub"}), ("homes", {"scientist"})):
        listing = reads[name]
        if isinstance(listing, str):
            assert listing in denied, (name, listing)
        else:
            assert set(listing) <= allowed, (name, listing)
    assert result["env_secrets"] == []
    assert result["proc_secrets"] == []
    assert not [k for k in result["env"] if k.startswith("PLEXHUB_") and k != "PLEXHUB_API_URL"]
    assert "CONFIGPROXY_AUTH_TOKEN" not in result["env"]
    assert ADMIN_TOKEN not in printed
    assert SECRET not in printed
    # and the API still answers the kernel with the user's own hub token
    assert result["me"]["user"] == "scientist"
    assert result["me"]["role"] == "scientist"


def test_servers_and_kernels_run_as_their_accounts(hub: Hub) -> None:
    """Every user's server, and everything it started, runs as that user's own account."""
    uids = {account_name(u): pwd.getpwnam(account_name(u)).pw_uid
            for u in ("scientist", "analyst")}
    servers = [p for p in descendants(hub.proc.pid)
               if any("jupyterhub-singleuser" in a for a in p.cmdline())]
    assert len(servers) == 2
    for server in servers:
        owner = account_name(server.environ()["JUPYTERHUB_USER"])
        for p in [server, *server.children(recursive=True)]:
            assert p.uids().real == p.uids().effective == uids[owner], p.cmdline()
