"""plexhub.extensions: the JupyterLab and Jupyter Server extensions (not built yet: the
study browser and "open in viewer" of the JupyterLab issue)."""
