"""plexhub.widgets (later issues build it)."""
