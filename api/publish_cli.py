"""``plexhub publish NOTEBOOK.ipynb --study CODE``: publish a notebook to a study over the API.

Where the API is and who is asking, first match wins:

- ``--api URL`` / ``--token T`` on the command line;
- ``PLEXHUB_API_URL`` / ``PLEXHUB_API_TOKEN`` in the environment;
- in a JupyterLab started by the hub (``JUPYTERHUB_SERVICE_PREFIX`` is set there): the token
  is ``JUPYTERHUB_API_TOKEN`` (the single-user server's own hub token, sent as a bearer
  token; the API accepts hub tokens in hub mode) and the URL is the plexhub service on the
  same hub: ``<origin><JUPYTERHUB_BASE_URL>services/<PLEXHUB_SERVICE_NAME or plexhub>``,
  where the origin comes from ``JUPYTERHUB_PUBLIC_URL`` or ``JUPYTERHUB_PUBLIC_HUB_URL``
  (set when the hub has a public URL) and is ``http://127.0.0.1:8000`` (the local proxy)
  otherwise.

Only the standard library is used, so the command works in any kernel environment.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from plexhub.errors import InputError, PlexhubError

LOCAL_PROXY = "http://127.0.0.1:8000"


def hub_api_url(env: Mapping[str, str]) -> str | None:
    """The plexhub service URL as seen from a hub-spawned JupyterLab, or None elsewhere."""
    if not env.get("JUPYTERHUB_SERVICE_PREFIX"):
        return None
    public = env.get("JUPYTERHUB_PUBLIC_URL") or env.get("JUPYTERHUB_PUBLIC_HUB_URL") or ""
    parts = urlsplit(public)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc \
        else LOCAL_PROXY
    prefix = env.get("JUPYTERHUB_BASE_URL") or "/"
    service = env.get("PLEXHUB_SERVICE_NAME") or "plexhub"
    path = "/".join(part for part in (prefix.strip("/"), "services", service) if part)
    return f"{origin}/{path}"


def endpoint(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, str]:
    """(API base URL without a trailing slash, token)."""
    url = args.api or env.get("PLEXHUB_API_URL") or hub_api_url(env)
    token = args.token or env.get("PLEXHUB_API_TOKEN") or (
        env.get("JUPYTERHUB_API_TOKEN") if env.get("JUPYTERHUB_SERVICE_PREFIX") else None)
    if not url:
        raise InputError("the API URL", "is not known",
                         "pass --api http://host:port or set PLEXHUB_API_URL")
    if not token:
        raise InputError("the API token", "is not known",
                         "pass --token or set PLEXHUB_API_TOKEN")
    return url.rstrip("/"), token


def publish(url: str, token: str, study: str, name: str, notebook: dict[str, Any],
            execute: bool, reason: str, timeout: float = 3600) -> dict[str, Any]:
    body = json.dumps({"name": name, "notebook": notebook, "execute": execute,
                       "reason": reason}).encode()
    request = urllib.request.Request(
        f"{url}/api/v1/studies/{quote(study, safe='')}/notebooks", data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", "")
        except (ValueError, AttributeError):
            detail = ""
        raise PlexhubError(f"publishing to study {study}",
                           f"the API answered {exc.code}: {detail or exc.reason}") from None
    except urllib.error.URLError as exc:
        raise PlexhubError(f"the API at {url}", f"cannot be reached ({exc.reason})",
                           "check --api / PLEXHUB_API_URL") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", type=Path, help="the .ipynb file")
    parser.add_argument("--study", required=True, help="study code")
    parser.add_argument("--name", help="published name (default: the file name without "
                        ".ipynb); publishing a name again makes its next version")
    parser.add_argument("--execute", action="store_true",
                        help="run the notebook on the server (python3 kernel) before storing")
    parser.add_argument("--reason", default="", help="reason recorded in the audit trail")
    parser.add_argument("--api", help="API base URL (default: PLEXHUB_API_URL, or the hub's "
                        "plexhub service inside a hub JupyterLab)")
    parser.add_argument("--token", help="API token (default: PLEXHUB_API_TOKEN, or "
                        "JUPYTERHUB_API_TOKEN inside a hub JupyterLab)")


def cmd_publish(args: argparse.Namespace) -> int:
    path: Path = args.notebook
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(path), "does not exist") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"is not a notebook file ({exc})") from None
    url, token = endpoint(args, os.environ)
    name = args.name or path.name.removesuffix(".ipynb")
    result = publish(url, token, args.study, name, notebook, args.execute, args.reason)
    print(f"published {args.study}/{result['name']} version {result['version']} "
          f"(id {result['id']}, sha256 {result['content_hash']})")
    return 0
