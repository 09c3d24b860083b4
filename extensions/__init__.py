"""plexhub.extensions: plexhub inside JupyterLab.

- A prebuilt JupyterLab extension (``extensions/lab``, TypeScript; built by ``make labext`` and
  by every setuptools build, installed under ``share/jupyter/labextensions/plexhub``): the
  Studies side panel (studies, images with thumbnail, channels and conversion state,
  presets; opening an image inserts a viewer cell); "Publish notebook to study" (palette and
  the notebook toolbar; reason and signature where the study's profile asks); "Ingest into a
  plexhub study…" (the file browser's context menu; the job followed in a notification); a
  status-bar item with the running conversion jobs.
- A Jupyter Server extension (:mod:`plexhub.extensions.server`, switched on by
  ``etc/jupyter/jupyter_server_config.d/plexhub.json``): the panel's requests go to it, and
  it forwards them to the plexhub API server-side with the server's own token, so the page's
  JavaScript never holds an API token.

Importing this package is cheap: the handlers load when a server loads the extension.
"""

from __future__ import annotations

from typing import Any

MODULE = "plexhub.extensions"
LABEXTENSION = "plexhub"  # the lab extension's name (extensions/lab/package.json)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": MODULE}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": LABEXTENSION}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from plexhub.extensions.server import load

    load(serverapp)
