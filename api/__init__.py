"""plexhub.api: the FastAPI service (catalog, presets, tiles, sharing, the sponsor portal);
`plexhub serve` runs it, `plexhub up` runs it as a JupyterHub service."""
