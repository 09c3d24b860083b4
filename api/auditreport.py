"""The auditor's report of one study (issue 14): a single self-contained HTML page.

Study and profile (with every rule of the profile), whether the study's audit chain verifies,
who had access when (every grant with its creation, expiry and revocation), every electronic
signature (and whether it still matches its hashes), every change with its actor, role,
reason, client and request id, and the system it ran on. Every value is escaped; the route
serves the page as an attachment with the inert headers (CSP sandbox, nosniff), so it holds
no script and no session's power.

The system version and configuration are recorded at two points: each signature's content
(``system``: plexhub version, database, profile digests) and the report's own footer.
Events between signatures carry no system record of their own (see the README).
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from plexhub import __version__
from plexhub.api.auditchain import canonical, timestamp, verify
from plexhub.api.models import Grant, Signature, Study
from plexhub.policies.profiles import RULES, ComplianceProfile, rule_text

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#111}
table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}
th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#eee}code{font-size:12px;word-break:break-all}
.ok{color:#075}.bad{color:#a00;font-weight:bold}"""


def system_facts(dialect: str, profiles: Mapping[str, ComplianceProfile]) -> dict[str, Any]:
    """The system a record was made on: versions, the database and each profile's digest."""
    return {"plexhub": __version__, "python": platform.python_version(), "database": dialect,
            "profiles": {name: hashlib.sha256(canonical(p.model_dump(mode="json"))).hexdigest()
                         for name, p in sorted(profiles.items())}}


def _e(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return escape(timestamp(value))
    return escape(str(value))


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], label: str) -> str:
    """A table; cells are HTML already escaped by the caller."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cols = "".join(f"<th scope=col>{escape(h)}</th>" for h in head)
    return (f"<table aria-label='{escape(label)}'><thead><tr>{cols}</tr></thead>"
            f"<tbody>{body or '<tr><td colspan=' + str(len(head)) + '>none</td></tr>'}"
            f"</tbody></table>")


def _change(before: Any, after: Any) -> str:
    parts = []
    if before:
        parts.append(f"before: <code>{_e(canonical(before).decode())}</code>")
    if after:
        parts.append(f"after: <code>{_e(canonical(after).decode())}</code>")
    return "<br>".join(parts)


def render(study: Study, profile: ComplianceProfile, events: Sequence[Mapping[str, Any]],
           grants: Sequence[Grant], signatures: Sequence[tuple[Signature, bool]],
           system: Mapping[str, Any], generated_at: datetime, generated_by: str) -> str:
    """The report as an HTML document (``signatures``: each with whether it is intact)."""
    checked, broken = verify(events, study.code)
    chain = (f"<p class=ok>audit chain intact: {checked} events</p>" if broken is None else
             f"<p class=bad>audit chain BROKEN at event {broken.seq}: {_e(broken.problem)}</p>")
    rules = _table(["rule", "value"], ((f"<code>{_e(r)}</code>", _e(rule_text(profile, r)))
                                       for r in RULES), "profile rules")
    grant_rows = _table(
        ["principal", "capabilities", "granted by", "granted at", "expires", "revoked",
         "reason"],
        ((_e(g.principal), _e(", ".join(g.capabilities or [])), _e(g.granted_by),
          _e(g.created_at), _e(g.expires_at), _e(g.revoked_at), _e(g.reason))
         for g in grants), "grants over time")
    sig_rows = _table(
        ["signed at (UTC)", "signer", "role", "meaning", "action", "object", "method",
         "content SHA-256", "valid"],
        ((_e(s.signed_at), _e(s.signer), _e(s.role), _e(s.meaning), _e(s.action),
          f"{_e(s.entity_type)} {_e(s.entity_id)}", _e(s.method),
          f"<code>{_e(s.content_hash)}</code>",
          "<span class=ok>yes</span>" if ok else "<span class=bad>NO</span>")
         for s, ok in signatures), "signatures")
    event_rows = _table(
        ["seq", "time (UTC)", "actor", "role", "action", "object", "reason", "change",
         "client", "request", "hash"],
        ((_e(e["seq"]), _e(e["ts"]), _e(e["actor"]), _e(e.get("role")), _e(e["action"]),
          f"{_e(e['entity_type'])} {_e(e['entity_id'])}", _e(e.get("reason")),
          _change(e.get("before"), e.get("after")), _e(e.get("client")),
          _e(e.get("request_id")), f"<code>{_e((e.get('hash') or '')[:16])}</code>")
         for e in events), "changes")
    sys_rows = _table(["fact", "value"], ((_e(k), f"<code>{_e(v)}</code>")
                                          for k, v in system.items()), "system")
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8>
<title>Audit report: study {_e(study.code)}</title><style>{CSS}</style></head>
<body><main>
<h1>Audit report: study {_e(study.code)}</h1>
<table aria-label=study><tbody>
<tr><th scope=row>title</th><td>{_e(study.title)}</td></tr>
<tr><th scope=row>sponsor</th><td>{_e(study.sponsor)}</td></tr>
<tr><th scope=row>profile</th><td>{_e(profile.name)}: {_e(profile.title)}</td></tr>
<tr><th scope=row>state</th><td>{_e(study.state)}</td></tr>
<tr><th scope=row>created</th><td>{_e(study.created_at)} by {_e(study.created_by)}</td></tr>
</tbody></table>
{chain}
<h2>Profile rules</h2>{rules}
<h2>Access over time</h2>{grant_rows}
<h2>Electronic signatures</h2>{sig_rows}
<h2>Changes</h2>{event_rows}
<h2>System</h2>{sys_rows}
<p>Generated {_e(generated_at)} by {_e(generated_by)}. The events above verify with the
standalone verifier against the JSON or CSV export of the same study.</p>
</main></body></html>
"""
