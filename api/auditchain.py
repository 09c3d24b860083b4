"""The audit trail's hash chain: canonical JSON, each event's hash, and the verifier.

An event's hash is the SHA-256 (hex) of the canonical JSON (sorted keys, no spaces, UTF-8,
timestamps as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC) of the fields in :data:`HASHED`, which
include ``prev_hash`` (the hash of the event before it: the global chain) and
``study_prev_hash`` (the hash of the study's event before it, for an event of a study: the
study's chain). The first event of a chain points at :data:`GENESIS`.

This file is also the auditors' standalone verifier: it needs only Python 3.11's standard
library, so ``python3 auditchain.py study-S1-audit.json`` (or ``.csv``) checks an export
without plexhub installed (``GET /api/v1/audit/verifier.py`` serves this file). It exits 0
when the study's chain holds and 1 naming the first broken event.

Export formats (``GET /api/v1/studies/{code}/audit?format=json|csv``): JSON is an object
with ``study`` and ``events`` (each with ``seq``, the :data:`HASHED` fields and ``hash``;
``ts`` as text); CSV has one row per event with the columns :data:`COLUMNS`, ``before`` and
``after`` as canonical JSON, and an empty cell for a null of a :data:`NULLABLE` column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
HASHED = ("ts", "actor", "role", "action", "entity_type", "entity_id", "study_code",
          "before", "after", "reason", "request_id", "client", "prev_hash", "study_prev_hash")
COLUMNS = ("seq", *HASHED, "hash")
NULLABLE = frozenset({"role", "study_code", "before", "after", "request_id", "client",
                      "prev_hash", "study_prev_hash", "hash"})


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


# --- exports and the standalone verifier -------------------------------------------------------

def export_event(fields: Mapping[str, Any]) -> dict[str, Any]:
    """An event as an export holds it: the :data:`COLUMNS`, ``ts`` as canonical text."""
    out = {k: fields.get(k) for k in COLUMNS}
    ts = out["ts"]
    out["ts"] = timestamp(ts) if isinstance(ts, datetime) else ts
    return out


def to_json(study: str, events: Iterable[Mapping[str, Any]], **about: Any) -> str:
    return json.dumps({"study": study, **about,
                       "events": [export_event(e) for e in events]}, ensure_ascii=False,
                      indent=1)


def to_csv(events: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(COLUMNS)
    for e in events:
        row = export_event(e)
        out.writerow(["" if row[k] is None else
                      canonical(row[k]).decode() if k in ("before", "after") else row[k]
                      for k in COLUMNS])
    return buf.getvalue()


def from_csv(text: str) -> list[dict[str, Any]]:
    events = []
    for row in csv.DictReader(io.StringIO(text)):
        e: dict[str, Any] = {}
        for k in COLUMNS:
            cell = row.get(k, "")
            if cell == "" and k in NULLABLE:
                e[k] = None
            elif k in ("before", "after"):
                e[k] = json.loads(cell)
            else:
                e[k] = cell
        events.append(e)
    return events


def read_export(path: Path) -> tuple[str | None, list[dict[str, Any]]]:
    """(the study, its events) of a JSON or CSV export."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        events = from_csv(text)
        codes = {e["study_code"] for e in events}
        return (codes.pop() if len(codes) == 1 else None), events
    doc = json.loads(text)
    return doc.get("study"), list(doc["events"])


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 auditchain.py EXPORT``: verify a study's audit export (0: intact)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python3 auditchain.py STUDY-AUDIT.json|.csv", file=sys.stderr)
        return 2
    study, events = read_export(Path(args[0]))
    events.sort(key=lambda e: int(e["seq"]))
    checked, broken = verify(events, study)
    if broken is not None:
        print(f"study {study}: audit chain BROKEN at {broken}", file=sys.stderr)
        return 1
    last = events[-1]["hash"] if events else GENESIS
    print(f"study {study}: audit chain intact: {checked} events, last hash {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
