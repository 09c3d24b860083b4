"""plexhub.extensions (later issues build it)."""
