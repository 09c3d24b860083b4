"""``plexhub publish NOTEBOOK.ipynb --study CODE``: publish a notebook to a study over the API.

Where the API is and who is asking: ``--api URL`` / ``--token T``, else plexhub.client's one
rule (``PLEXHUB_API_URL`` / ``PLEXHUB_API_TOKEN``, else, in a JupyterLab the hub started, the
hub's plexhub service and the server's own hub token ``JUPYTERHUB_API_TOKEN``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from plexhub.errors import InputError

PUBLISH_TIMEOUT = 3600.0  # seconds: execute=true runs the notebook before the API answers


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
    from plexhub.client import ApiClient, locate_api  # httpx: only when publishing

    url, token = locate_api(args.api, args.token)
    if not url:
        raise InputError("the API URL", "is not known",
                         "pass --api http://host:port or set PLEXHUB_API_URL")
    if not token:
        raise InputError("the API token", "is not known",
                         "pass --token or set PLEXHUB_API_TOKEN")
    name = args.name or path.name.removesuffix(".ipynb")
    with ApiClient(url, token, timeout=PUBLISH_TIMEOUT) as api:
        result = api.publish_notebook(args.study, name, notebook, execute=args.execute,
                                      reason=args.reason)
    print(f"published {args.study}/{result['name']} version {result['version']} "
          f"(id {result['id']}, sha256 {result['content_hash']})")
    return 0
