"""plexhub.hub (later issues build it)."""
