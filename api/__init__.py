"""plexhub.api (later issues build it)."""
