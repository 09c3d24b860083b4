"""``plexhub publish NOTEBOOK.ipynb --study CODE``: publish a notebook to a study over the API.

Where the API is and who is asking: ``--api URL`` / ``--token T``, else plexhub.client's one
rule (``PLEXHUB_API_URL`` / ``PLEXHUB_API_TOKEN``, else, in a JupyterLab the hub started, the
hub's plexhub service and the server's own hub token ``JUPYTERHUB_API_TOKEN``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
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
    parser.add_argument("--reason", default="", help="reason for change, recorded in the audit "
                        "trail (a GLP study requires one: asked for at a terminal)")
    parser.add_argument("--sign", action="store_true",
                        help="sign the publication (a GLP study requires it): asks for your "
                        "password, or without one your own API token (read from stdin when "
                        "it is not a terminal); asked for at a terminal when needed")
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
    from plexhub.client import ApiInputError

    name = args.name or path.name.removesuffix(".ipynb")
    reason: str = args.reason
    credential = _credential() if args.sign else None
    with ApiClient(url, token, timeout=PUBLISH_TIMEOUT) as api:
        while True:
            try:
                result = api.publish_notebook(args.study, name, notebook,
                                              execute=args.execute, reason=reason,
                                              credential=credential)
                break
            except ApiInputError as exc:  # ask for what the study's profile needs
                detail = str(exc)
                if not sys.stdin.isatty():
                    raise
                if "reason: is required" in detail and not reason.strip():
                    reason = input(f"study {args.study} needs a reason for change: ")
                elif "credential: is required" in detail and credential is None:
                    credential = _credential()
                else:
                    raise
    print(f"published {args.study}/{result['name']} version {result['version']} "
          f"(id {result['id']}, sha256 {result['content_hash']})")
    return 0


def _credential() -> str:
    """The signer's password (or own API token): asked for at a terminal, else stdin's
    first line; never an argument (it would show in the process list)."""
    if sys.stdin.isatty():
        return getpass.getpass("sign with your password (or your API token): ")
    return sys.stdin.readline().rstrip("\n")
