"""JupyterHub config of the plexhub deployment: ``jupyterhub -f hub/jupyterhub_config.py``.

All logic lives in :mod:`plexhub.hub.config` and reads ``PLEXHUB_*`` settings.
"""

from plexhub.hub.config import configure

configure(get_config())  # type: ignore[name-defined]  # noqa: F821  (JupyterHub's loader)
