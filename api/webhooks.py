"""The findings webhook (issue 19): on a study's sign-off, its findings export goes as JSON
to ``PLEXHUB_FINDINGS_WEBHOOK``, signed with HMAC-SHA256 of the body under
``PLEXHUB_FINDINGS_WEBHOOK_SECRET`` in the ``X-Plexhub-Signature: sha256=<hex>`` header.

The call is queued in the catalog (``webhook_deliveries``, an outbox row written in the
sign-off's own transaction), so a restart or a crash does not lose it. A
:class:`WebhookSender` in each process that runs jobs leases a due row (one conditional
UPDATE: only one sender can win it; a lease lapses after ``LEASE`` seconds), posts it, and on
a failure (no answer, or a status other than 2xx) tries again after
``findings_webhook_backoff_seconds`` × 2^(attempt-1) (at most an hour), until
``findings_webhook_max_attempts``; then the row stays as ``failed``. The secret is never
logged nor stored; logs name the delivery, its attempt and the HTTP status only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import threading
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from plexhub.api import audit, peerreview, signatures
from plexhub.api.db import Database, aware, utcnow
from plexhub.api.models import Study, WebhookDelivery
from plexhub.settings import Settings

log = logging.getLogger("plexhub.api.webhooks")
EVENT = "findings.signed_off"
SIGNATURE_HEADER = "X-Plexhub-Signature"
LEASE = 60.0  # seconds a sender holds a delivery while it calls
TIMEOUT = 10.0  # seconds one call may take
MAX_BACKOFF = 3600.0


def body_signature(secret: str, body: bytes) -> str:
    """The header value: ``sha256=`` and the HMAC-SHA256 of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def enqueue_signoff(session: Session, settings: Settings, study: Study) -> str | None:
    """Queue the sign-off's webhook call (in the caller's transaction); None when no
    webhook is configured."""
    if not settings.findings_webhook:
        return None
    from plexhub.api.routes.cells import study_cell_results

    f = peerreview.facts(session, study)
    payload = {"event": EVENT, "study": study.code,
               "signed_off_at": f.review.locked_at.isoformat()
               if f.review is not None and f.review.locked_at else None,
               "primary": f.assignment.primary if f.assignment else None,
               "peer": f.assignment.peer if f.assignment else None,
               "signatures": [signatures.public(s).model_dump(mode="json")
                              for s in f.signoffs.values()],
               "findings": peerreview.export_rows(session, study, signed_only=False),
               # the analysed images' phenotype counts and densities (issue 16), for the LIMS
               "cells": study_cell_results(session, study)}
    row = WebhookDelivery(id=uuid.uuid4().hex, event=EVENT, study_code=study.code,
                          payload=json.dumps(payload, sort_keys=True), state="pending",
                          attempts=0, next_attempt_at=utcnow(), last_error="",
                          created_at=utcnow())
    session.add(row)
    return row.id


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before attempt ``attempts + 1`` after ``attempts`` failed ones."""
    return float(min(MAX_BACKOFF, settings.findings_webhook_backoff_seconds
                     * 2 ** max(0, attempts - 1)))


class WebhookSender:
    """Delivers due outbox rows in a background thread (see the module's docstring)."""

    POLL = 1.0  # seconds between looks at the outbox

    def __init__(self, db: Database, settings: Settings,
                 http: httpx.Client | None = None) -> None:
        self.db = db
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.http = http or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def configured(self) -> bool:
        return bool(self.settings.findings_webhook)

    def start(self) -> None:
        if not self.configured:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="plexhub-webhooks",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def shutdown(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT + 5)
        self.http.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception:  # the catalog may be briefly unreachable: try again later
                log.exception("webhook sender tick failed")
            self._wake.wait(self.POLL)
            self._wake.clear()

    def _claim(self, delivery_id: str) -> bool:
        now = utcnow()
        with self.db.session() as s:
            done = s.execute(update(WebhookDelivery).where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.state == "pending",
                or_(WebhookDelivery.lease_until.is_(None),
                    WebhookDelivery.lease_until < now))
                .values(lease_owner=self.owner,
                        lease_until=now + timedelta(seconds=LEASE)))
            s.commit()
            return bool(getattr(done, "rowcount", 0) == 1)

    def tick(self) -> int:
        """Deliver every due row this sender can lease; returns how many it tried."""
        now = utcnow()
        with self.db.session() as s:
            due = s.scalars(select(WebhookDelivery.id).where(
                WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.lease_until.is_(None),
                    WebhookDelivery.lease_until < now))
                .order_by(WebhookDelivery.created_at).limit(20)).all()
        tried = 0
        for delivery_id in due:
            if self._stopping.is_set():
                break
            if self._claim(delivery_id):
                tried += 1
                self._deliver(delivery_id)
        return tried

    def _post(self, row: WebhookDelivery) -> str | None:
        """Call the webhook; None on success, else what went wrong (no secret in it)."""
        url = self.settings.findings_webhook
        secret = self.settings.findings_webhook_secret
        assert url is not None
        body = row.payload.encode("utf-8")
        headers = {"Content-Type": "application/json", "X-Plexhub-Event": row.event,
                   "X-Plexhub-Delivery": row.id}
        if secret is not None:
            headers[SIGNATURE_HEADER] = body_signature(secret.get_secret_value(), body)
        try:
            r = self.http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"no answer ({type(exc).__name__})"
        if 200 <= r.status_code < 300:
            return None
        return f"HTTP {r.status_code}"

    def _deliver(self, delivery_id: str) -> None:
        with self.db.session() as s:
            row = s.get(WebhookDelivery, delivery_id)
            if row is None or row.lease_owner != self.owner:
                return
            error = self._post(row)
            row.attempts += 1
            row.lease_owner, row.lease_until = None, None
            if error is None:
                row.state, row.sent_at, row.last_error = "sent", utcnow(), ""
                log.info("webhook %s delivered (attempt %d)", row.id, row.attempts)
                _audit(s, row, "webhook.sent")
            else:
                row.last_error = error
                if row.attempts >= self.settings.findings_webhook_max_attempts:
                    row.state = "failed"
                    log.warning("webhook %s failed for good after %d attempts: %s", row.id,
                                row.attempts, error)
                    _audit(s, row, "webhook.failed")
                else:
                    wait = backoff(self.settings, row.attempts)
                    row.next_attempt_at = utcnow() + timedelta(seconds=wait)
                    log.warning("webhook %s attempt %d failed (%s); next in %.1f s", row.id,
                                row.attempts, error, wait)
            s.commit()


def _audit(session: Session, row: WebhookDelivery, action: str) -> None:
    """The export's outcome in the study's trail (issue 14: an export is audited), by the
    service itself, with the SHA-256 of the body that was (or would have been) sent."""
    audit.record(session, audit.SYSTEM, action, "webhook", row.id, study_code=row.study_code,
                 after={"event": row.event, "attempts": row.attempts,
                        "last_error": row.last_error,
                        "sha256": hashlib.sha256(row.payload.encode("utf-8")).hexdigest()})


def deliveries(session: Session, study_code: str) -> list[dict[str, Any]]:
    """The study's webhook deliveries (for tests and operators)."""
    return [{"id": d.id, "event": d.event, "state": d.state, "attempts": d.attempts,
             "last_error": d.last_error, "sent_at": aware(d.sent_at)}
            for d in session.scalars(select(WebhookDelivery).where(
                WebhookDelivery.study_code == study_code)
                .order_by(WebhookDelivery.created_at))]
