"""The audit trail's hash chain: canonical JSON, each event's hash, and the verifier.

An event's hash is the SHA-256 (hex) of the canonical JSON (sorted keys, no spaces, UTF-8,
timestamps as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC) of the fields in :data:`HASHED`, which
include ``prev_hash`` (the hash of the event before it: the global chain) and
``study_prev_hash`` (the hash of the study's event before it, for an event of a study: the
study's chain). The first event of a chain points at :data:`GENESIS`.

``tools/verify_audit.py`` repeats this in plain Python for auditors (no plexhub install);
``tests/integration/api/test_audit_chain.py`` keeps the two in agreement.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
HASHED = ("ts", "actor", "role", "action", "entity_type", "entity_id", "study_code",
          "before", "after", "reason", "request_id", "client", "prev_hash", "study_prev_hash")


def timestamp(ts: datetime) -> str:
    """UTC, microseconds, ``Z`` (SQLite gives back naive UTC values: taken as UTC)."""
    aware = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def plain_json(value: Any) -> Any:
    """``value`` as JSON gives it back (datetimes as ISO text, tuples as lists): what the
    catalog stores is then exactly what was hashed."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=lambda o: o.isoformat()
                                 if isinstance(o, datetime) else str(o)))


def event_hash(fields: Mapping[str, Any]) -> str:
    """The hash of an event given as a mapping of (at least) the :data:`HASHED` fields;
    ``ts`` a datetime or its canonical text."""
    doc = {k: fields.get(k) for k in HASHED}
    ts = doc["ts"]
    doc["ts"] = timestamp(ts) if isinstance(ts, datetime) else ts
    return hashlib.sha256(canonical(doc)).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """The first event where a chain does not hold, and why."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"event {self.seq}: {self.problem}"


def verify(events: Iterable[Mapping[str, Any]], study: str | None = None
           ) -> tuple[int, ChainBreak | None]:
    """Walk ``events`` in ``seq`` order; return (events checked, first break or None).

    ``study`` None: every event and both chains (global and each study's); a study code:
    only that study's events and its chain (what a per-study export holds)."""
    head = GENESIS
    heads: dict[str, str] = {}
    checked = 0
    for e in events:
        code = e.get("study_code")
        if study is not None and code != study:
            continue
        checked += 1
        seq = int(e["seq"])
        stored = e.get("hash")
        if not stored or event_hash(e) != stored:
            return checked, ChainBreak(seq, "its content does not match its hash (altered)")
        if study is None:
            if e.get("prev_hash") != head:
                return checked, ChainBreak(seq, "it does not follow the event before it in "
                                           "the global chain (an event was removed, inserted "
                                           "or moved)")
            head = stored
        if code is not None:
            if e.get("study_prev_hash") != heads.get(code, GENESIS):
                return checked, ChainBreak(seq, f"it does not follow the event before it in "
                                           f"study {code}'s chain (an event was removed, "
                                           "inserted or moved)")
            heads[code] = stored
    return checked, None
