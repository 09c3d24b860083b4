"""The sponsor portal: server-rendered pages (Jinja2 templates in ``templates/``) over the
API, with static files in ``static/``.

``static/vendor/`` holds OpenSeadragon (BSD-3-Clause, licence in
``static/vendor/LICENSE-openseadragon.txt``), pinned in ``package.json`` and copied there by
``scripts/build_portal.sh``; the copy is committed so that installs need no npm.
The routes live in :mod:`plexhub.api.portal.pages` (imported by the app factory).
"""
