"""plexhub.policies (later issues build it)."""
