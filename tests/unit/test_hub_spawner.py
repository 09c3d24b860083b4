"""The OS account names of hub users (plexhub.hub.spawner.account_name)."""

from __future__ import annotations

import re

from plexhub.hub.spawner import account_name

SYSTEM_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def test_plain_names_are_readable() -> None:
    assert account_name("scientist") == "plexhub-scientist"
    assert account_name("a-1") == "plexhub-a-1"


def test_any_hub_name_maps_to_a_safe_unique_account() -> None:
    names = ["scientist", "Scientist", "alice@example.org", "../../etc", "root", "a b",
             "x" * 200, "é", "-dash", "a" * 23, "a" * 24, "plexhub_x", "0", ""]
    accounts = [account_name(n) for n in names]
    assert len(set(accounts)) == len(names)
    for account in accounts:
        assert SYSTEM_NAME.fullmatch(account), account
        assert account.startswith(("plexhub-", "plexhub_"))
    assert account_name("root") != "root"
