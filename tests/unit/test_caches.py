"""The process caches (on cachetools): bounded, a full cache forgets its oldest entries (not
everything at once), expired entries are never answered."""

from __future__ import annotations

import time

import pytest

from plexhub.api.auth import AnswerCache, TokenInfo
from plexhub.api.hubauth import HubAuth, HubConfig
from plexhub.api.tiles import Resolved
from plexhub.ome_pipeline.source import ByteLRU
from plexhub.policies.access import Principal


def test_byte_lru_is_bounded_by_bytes_and_keeps_the_recently_used() -> None:
    cache = ByteLRU(100)
    cache.put("a", "A", 40)
    cache.put("b", "B", 40)
    assert cache.get("a") == "A"  # "a" is now the most recently used
    cache.put("c", "C", 40)  # 120 bytes: the least recently used ("b") goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")
    cache.put("huge", "H", 101)  # larger than the whole cache: not kept, nothing dropped
    assert (cache.get("huge"), cache.get("a"), cache.get("c")) == (None, "A", "C")
    cache.put("a", "other", 10)  # a key already held keeps its first value
    assert cache.get("a") == "A"


def test_a_full_tile_lookup_cache_forgets_its_oldest_entry_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from plexhub.api import tiles

    monkeypatch.setattr(Resolved, "MAX", 4)
    resolved = Resolved()
    for i in range(5):  # the current generation: earlier tests in the process may have moved it
        resolved.put(i, f"v{i}", tiles.generation(), 60.0)
    assert resolved.get(0) is None
    assert [resolved.get(i) for i in range(1, 5)] == ["v1", "v2", "v3", "v4"]


def test_tile_lookups_expire_and_die_with_the_generation() -> None:
    from plexhub.api import tiles

    resolved = Resolved()
    resolved.put("short", "s", tiles.generation(), 0.05)
    resolved.put("old", "o", tiles.generation() - 1, 60.0)
    resolved.put("never", "n", tiles.generation(), 0.0)
    assert resolved.get("short") == "s"
    assert resolved.get("old") is None
    assert resolved.get("never") is None
    time.sleep(0.1)
    assert resolved.get("short") is None


def test_a_full_token_answer_cache_forgets_its_oldest_answers_only() -> None:
    cache = AnswerCache()
    info = TokenInfo(Principal(user="ann", role="scientist"))
    now = time.monotonic()
    for i in range(10_002):
        cache.put(f"k{i}", now, info, None)
    assert cache.get("k0") == (False, None)  # bounded
    assert cache.get("k10000") == (True, info)  # the recent ones survive a full cache
    assert cache.get("k10001") == (True, info)


def test_an_expired_oauth_state_is_refused_without_asking_the_hub(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The state travels in a signed cookie (any worker reads it): past STATE_SECONDS it is
    refused; so is a cookie of another login or one signed with another key."""
    hub = HubAuth(HubConfig(api_url="http://127.0.0.1:9/hub/api", api_token="svc",
                            client_id="service-plexhub", prefix="/services/plexhub/",
                            callback_url="/services/plexhub/oauth_callback", public_hub=""))
    other = HubAuth(HubConfig(api_url="http://127.0.0.1:9/hub/api", api_token="other-svc",
                              client_id="service-plexhub", prefix="/services/plexhub/",
                              callback_url="/services/plexhub/oauth_callback",
                              public_hub=""))
    try:
        start = hub.start_login("/back")
        assert start.url.startswith("/hub/api/oauth2/authorize?")
        assert "code_challenge=" in start.url  # PKCE (HubOAuth)
        state = start.url.split("state=")[1].split("&")[0]
        assert start.cookie_name == hub.state_cookie(state)
        assert "/back" in hub.oauth.get_next_url(start.cookie_value)
        verifier = hub.oauth.get_code_verifier(start.cookie_value)
        assert verifier
        assert verifier not in start.url  # the PKCE secret stays in the browser's cookie
        forged = other.start_login("/elsewhere")
        for cookies in ({}, {start.cookie_name: forged.cookie_value},
                        {start.cookie_name: start.cookie_value + "x"}):
            with pytest.raises(PermissionError, match="unknown or expired OAuth state"):
                hub.finish_login("code", state, cookies)
        monkeypatch.setattr(hub.oauth, "state_seconds", 0.05)
        time.sleep(1.1)  # signed values carry whole seconds
        with pytest.raises(PermissionError, match="expired OAuth state"):
            hub.finish_login("code", state, {start.cookie_name: start.cookie_value})
    finally:  # the closed port is never called
        hub.close()
        other.close()
