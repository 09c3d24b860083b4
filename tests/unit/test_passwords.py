"""The password scheme shared by the hub's login and the API's signatures
(policies/passwords.py): hashes verify, and the registry look-up tells "no password" from a
registry it cannot read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plexhub.errors import ConfigurationError
from plexhub.policies.passwords import hash_password, registry_hash, verify_password


def test_the_registry_lookup(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    assert registry_hash(path, "alice") is None  # no registry: nobody has a password
    encoded = hash_password("correct horse", n=2**10)
    path.write_text(json.dumps({"version": 1, "users": {
        "alice": {"role": "scientist", "password": encoded}, "bob": {"role": "analyst"}}}))
    assert registry_hash(path, "alice") == encoded
    assert verify_password("correct horse", encoded)
    assert not verify_password("wrong horse", encoded)
    assert registry_hash(path, "bob") is None
    assert registry_hash(path, "carol") is None
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        registry_hash(path, "alice")
