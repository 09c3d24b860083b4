"""The hub's failed logins into the API's audit chain (issue 14).

The hub may not import the API, so it posts them (``POST /api/v1/audit/login-events``,
:mod:`plexhub.policies.loginaudit`). ``login-audit.jsonl`` (:mod:`plexhub.hub.lockout`) is the
spool: every failure (``login.failure``: reason ``bad_password``) and refusal while locked
(``login.refused``: ``locked_out``) is a line there first, and ``login-audit.forwarded`` (mode
0600) holds the byte offset up to which the API has taken them. A forward sends the lines past
that offset, a batch at a time, and moves the offset only once the API answered 200; when the
API is down nothing moves and the next forward sends the same events again. The API records
each event id once, so an event sent twice (its answer lost) is in the chain once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from plexhub.hub.lockout import AUDIT_NAME
from plexhub.policies.loginaudit import ID_PATTERN, MAX_EVENTS, USER_MAX

CURSOR_NAME = "login-audit.forwarded"
REASONS = {"login.failure": "bad_password", "login.refused": "locked_out"}
TIMEOUT = 5.0  # seconds for one post to the API
READ_BYTES = 1 << 20  # of the spool per batch (a batch is at most MAX_EVENTS events)
log = logging.getLogger("plexhub.hub.loginforward")


class ForwardError(Exception):
    """The API did not take the events (down, or it refused them); they stay spooled."""


@dataclass(frozen=True)
class Batch:
    events: list[dict[str, Any]]
    end: int  # the spool's offset after the last line read


def _text(value: Any, limit: int) -> str:
    """``value`` as text the API takes: at most ``limit`` characters, no NUL, no lone
    surrogate (a name tried is whatever the login form was sent)."""
    text = str(value)[:limit].replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8")


def _time(value: Any) -> str:
    """The line's time in ISO 8601 (now, for a line without a readable one)."""
    try:
        return datetime.fromisoformat(str(value)).isoformat()
    except ValueError:
        return datetime.now(UTC).isoformat(timespec="seconds")


def event_of(line: bytes, offset: int) -> dict[str, Any] | None:
    """The API's form of one spool line (None: not a failed login, or not readable). A line
    without a usable id (written before lines had ids) gets one from its offset and content
    (the same each time)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("event") not in REASONS:
        return None
    event_id = str(record.get("id") or "")
    if not re.fullmatch(ID_PATTERN.strip("^$"), event_id):
        event_id = hashlib.sha256(str(offset).encode() + b":" + line).hexdigest()[:32]
    return {"id": event_id, "user": _text(record.get("user", ""), USER_MAX),
            "client": _text(record.get("address", "") or "unknown", 100),
            "reason": REASONS[record["event"]], "at": _time(record.get("ts"))}


class LoginEventForwarder:
    """Sends the spool of ``folder`` (the hub dir) to ``url`` with the hub's ``key``."""

    def __init__(self, folder: Path, url: str, key: str, timeout: float = TIMEOUT,
                 client: httpx.Client | None = None) -> None:
        self.spool = folder / AUDIT_NAME
        self.cursor_path = folder / CURSOR_NAME
        self.url = url
        self.key = key
        self.timeout = timeout
        self.client = client  # None: a connection per post (its own timeout)
        self._lock = threading.Lock()  # one forward at a time

    def offset(self) -> int:
        try:
            return max(0, int(self.cursor_path.read_text().strip() or 0))
        except (FileNotFoundError, ValueError):
            return 0

    def _save(self, offset: int) -> None:
        tmp = self.cursor_path.with_name(self.cursor_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{offset}\n")
        os.replace(tmp, self.cursor_path)

    def pending(self) -> Batch:
        """The failed logins past the offset (whole lines only: one being written waits),
        at most ``MAX_EVENTS``."""
        start = self.offset()
        try:
            size = self.spool.stat().st_size
        except FileNotFoundError:
            return Batch([], 0)
        if size < start:  # the spool was replaced: read it from the start (ids dedupe)
            start = 0
        with self.spool.open("rb") as f:
            f.seek(start)
            data = f.read(READ_BYTES)
        events: list[dict[str, Any]] = []
        pos = start
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n") or len(events) >= MAX_EVENTS:
                break
            event = event_of(line.strip(), pos)
            pos += len(line)
            if event is not None:
                events.append(event)
        return Batch(events, pos)

    def forward(self) -> int:
        """Send everything pending; the number of events sent (each recorded once, or
        refused as invalid and passed over: :meth:`_post`). Raises
        :class:`ForwardError` when it could not (what was sent before stays sent)."""
        sent = 0
        with self._lock:
            while True:
                batch = self.pending()
                if batch.end == self.offset():
                    return sent
                if batch.events:
                    self._post(batch.events)
                    sent += len(batch.events)
                self._save(batch.end)

    def _post(self, events: list[dict[str, Any]]) -> None:
        """Send ``events``; an event the API refuses as invalid (422) must not hold up the
        others: the batch is then sent one by one, and a refused event is logged and passed
        over (its line stays in the spool file)."""
        r = self._send(events)
        if r.status_code == 422 and len(events) > 1:
            for event in events:
                self._post([event])
            return
        if r.status_code == 422:
            log.warning("the API refused a failed login of the spool (%s): %s", events[0],
                        r.text[:200])
            return
        if r.status_code != 200:
            raise ForwardError(f"the API answered {r.status_code} at {self.url}: "
                               f"{r.text[:200]}")

    def _send(self, events: list[dict[str, Any]]) -> httpx.Response:
        body, headers = {"events": events}, {"Authorization": f"Bearer {self.key}"}
        try:
            if self.client is None:
                return httpx.post(self.url, json=body, headers=headers, timeout=self.timeout)
            return self.client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ForwardError(f"the API is not reachable at {self.url}: {exc}") from exc
