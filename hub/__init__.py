"""plexhub.hub: the JupyterHub deployment (config, authenticator, ``plexhub up``)."""
