"""The auditor's report of one study (issue 14): one document, as HTML or PDF.

Study and profile (with every rule of the profile), whether the study's audit chain verifies,
who had access when (every grant with its creation, expiry and revocation), the failed logins
to the system while the study existed (hub and portal: global-chain events), every electronic
signature (and whether it still matches its hashes), every change with its actor, role,
reason, client and request id, the system version and configuration in force at each of
them (the last ``system.config`` event before it: ``api/sysconfig.py``), and the system the
report was made on.

:func:`build` gathers the report as plain data (:class:`Report`: headings, paragraphs and
tables of :class:`Span` text); :func:`html` renders it as a single self-contained page (every
value escaped; the route serves it as an attachment with the inert headers, so it holds no
script and no session's power) and ``api/auditpdf.py`` as a PDF, so both show the same.
"""

from __future__ import annotations

import bisect
import hashlib
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any, Literal

from plexhub import __version__
from plexhub.api.auditchain import canonical, timestamp, verify
from plexhub.api.models import Grant, Signature, Study
from plexhub.policies.profiles import RULES, ComplianceProfile, rule_text

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#111}
table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}
th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#eee}code{font-size:12px;word-break:break-all}
.ok{color:#075}.bad{color:#a00;font-weight:bold}"""
SHORT = 16  # characters of a hash shown in a table cell
NO_CONFIG = "none recorded"


def system_facts(dialect: str, profiles: Mapping[str, ComplianceProfile]) -> dict[str, Any]:
    """The system a record was made on: versions, the database and each profile's digest."""
    return {"plexhub": __version__, "python": platform.python_version(), "database": dialect,
            "profiles": {name: hashlib.sha256(canonical(p.model_dump(mode="json"))).hexdigest()
                         for name, p in sorted(profiles.items())}}


# --- the report as data --------------------------------------------------------------------

@dataclass(frozen=True)
class Span:
    """A run of text: plain, ``code`` (hashes, JSON), ``ok`` or ``bad`` (a check's result),
    or ``br`` (a line break)."""

    text: str
    kind: Literal["text", "code", "ok", "bad", "br"] = "text"


Cell = tuple[Span, ...]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    spans: Cell


@dataclass(frozen=True)
class Table:
    """Rows of cells under ``head``; ``row_heads``: each row's first cell names it."""

    label: str
    head: tuple[str, ...]
    rows: list[tuple[Cell, ...]]
    row_heads: bool = False


Block = Heading | Para | Table


@dataclass
class Report:
    title: str
    blocks: list[Block] = field(default_factory=list)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timestamp(value)
    return str(value)


def t(value: Any) -> Cell:
    return (Span(_text(value)),)


def code(value: Any) -> Cell:
    return (Span(_text(value), "code"),)


def _change(before: Any, after: Any) -> Cell:
    spans: list[Span] = []
    for label, value in (("before", before), ("after", after)):
        if value:
            if spans:
                spans.append(Span("", "br"))
            spans += [Span(f"{label}: "), Span(canonical(value).decode(), "code")]
    return tuple(spans)


class Configurations:
    """The ``system.config`` events (in ``seq`` order) and which was in force when."""

    def __init__(self, configs: Sequence[Mapping[str, Any]]) -> None:
        self.configs = list(configs)
        self.seqs = [int(c["seq"]) for c in self.configs]
        self.used: dict[int, Mapping[str, Any]] = {}

    def at(self, seq: int) -> Mapping[str, Any] | None:
        """The configuration recorded last before event ``seq`` (and mark it shown)."""
        i = bisect.bisect_left(self.seqs, seq)
        if i == 0:
            return None
        found = self.configs[i - 1]
        self.used[self.seqs[i - 1]] = found
        return found


def sha_of(config: Mapping[str, Any] | None) -> str:
    """The configuration's SHA-256 (as its event recorded it), or :data:`NO_CONFIG`."""
    if config is None:
        return NO_CONFIG
    return str((config.get("after") or {}).get("sha256") or "")


def _config_rows(config: Mapping[str, Any]) -> list[tuple[Cell, ...]]:
    after = config.get("after") or {}
    doc = after.get("config") or {}
    rows: list[tuple[Cell, ...]] = [(t("SHA-256"), code(after.get("sha256"))),
            (t("recorded"), t(f"event {config['seq']} at {_text(config['ts'])} "
                              f"(process {after.get('process', '')})"))]
    rows += [(t(key), code(doc[key])) for key in ("plexhub", "python",
                                                   "python_implementation", "database")
             if key in doc]
    rows += [(t(f"{group}.{name}"), code(_shown(value)))
             for group in ("libraries", "profiles", "settings")
             for name, value in sorted((doc.get(group) or {}).items())]
    return rows


def _shown(value: Any) -> str:
    if value is None:
        return "(unset)"
    return value if isinstance(value, str) else canonical(value).decode()


def build(study: Study, profile: ComplianceProfile, events: Sequence[Mapping[str, Any]],
          grants: Sequence[Grant], signatures: Sequence[tuple[Signature, bool]],
          system: Mapping[str, Any], generated_at: datetime, generated_by: str,
          configs: Sequence[Mapping[str, Any]] = (),
          logins: Sequence[Mapping[str, Any]] = (), logins_total: int = 0) -> Report:
    """The report (``signatures``: each with whether it is intact; ``configs``: every
    ``system.config`` event, oldest first; ``logins``: the last failed logins since the study
    was created, oldest first, of ``logins_total``)."""
    report = Report(f"Audit report: study {study.code}")
    add = report.blocks.append
    in_force = Configurations(configs)
    add(Heading(report.title, 1))
    add(Table("study", ("", ""), [
        (t("title"), t(study.title)), (t("sponsor"), t(study.sponsor)),
        (t("profile"), t(f"{profile.name}: {profile.title}")), (t("state"), t(study.state)),
        (t("created"), t(f"{_text(study.created_at)} by {study.created_by}"))],
        row_heads=True))
    checked, broken = verify(events, study.code)
    add(Para((Span(f"audit chain intact: {checked} events", "ok"),) if broken is None else
             (Span(f"audit chain BROKEN at event {broken.seq}: {broken.problem}", "bad"),)))
    add(Heading("Profile rules"))
    add(Table("profile rules", ("rule", "value"),
              [(code(r), t(rule_text(profile, r))) for r in RULES]))
    add(Heading("Access over time"))
    add(Table("grants over time", ("principal", "capabilities", "granted by", "granted at",
                                   "expires", "revoked", "reason"),
              [(t(g.principal), t(", ".join(g.capabilities or [])), t(g.granted_by),
                t(g.created_at), t(g.expires_at), t(g.revoked_at), t(g.reason))
               for g in grants]))
    _failed_logins(report, logins, max(logins_total, len(logins)))
    # a signature's configuration: the one before its signature.sign event
    signed_at = {str((e.get("after") or {}).get("signature")): int(e["seq"]) for e in events
                 if e["action"] == "signature.sign"}
    add(Heading("Electronic signatures"))
    add(Table("signatures", ("signed at (UTC)", "signer", "role", "meaning", "action",
                             "object", "method", "content SHA-256", "valid",
                             "configuration"),
              [(t(s.signed_at), t(s.signer), t(s.role), t(s.meaning), t(s.action),
                t(f"{s.entity_type} {s.entity_id}"), t(s.method), code(s.content_hash),
                (Span("yes", "ok"),) if ok else (Span("NO", "bad"),),
                code(sha_of(in_force.at(signed_at[s.id]))[:SHORT]
                     if s.id in signed_at else NO_CONFIG))
               for s, ok in signatures]))
    add(Heading("Changes"))
    add(Para((Span("Each change is listed under the system version and configuration in "
                   "force when it was made (the last one recorded before it; see "
                   "Configurations)."),)))
    _changes(report, events, in_force)
    add(Heading("Configurations"))
    if not in_force.used:
        add(Para((Span("No system configuration was recorded before these events."),)))
    for config in sorted(in_force.used.values(), key=lambda c: int(c["seq"])):
        add(Heading(f"Configuration {sha_of(config)[:SHORT]}", 3))
        add(Table(f"configuration {sha_of(config)}", ("", ""), _config_rows(config),
                  row_heads=True))
    add(Heading("System"))
    add(Table("system", ("fact", "value"), [(t(k), code(v)) for k, v in system.items()]))
    add(Para((Span(f"Generated {_text(generated_at)} by {generated_by}. The events above "
                   "verify with the standalone verifier against the JSON or CSV export of "
                   "the same study."),)))
    return report


LOGIN_HEAD = ("seq", "time (UTC)", "where", "user name tried", "reason", "client", "hash")


def _failed_logins(report: Report, events: Sequence[Mapping[str, Any]], total: int) -> None:
    """Failed logins (``auth.login_failed`` from the hub, ``login.failure`` from the portal)
    since the study was created: events of the global chain, not of the study's."""
    add = report.blocks.append
    add(Heading("Failed logins"))
    shown = f"the last {len(events)} shown" if total > len(events) else "all shown"
    add(Para((Span(f"Failed logins to the system since the study was created: {total} "
                   f"({shown}). They are events of the global audit chain, which "
                   "`plexhub audit verify` checks; the name tried is what was typed, never "
                   "a password or token."),)))
    rows: list[tuple[Cell, ...]] = []
    for e in events:
        after = e.get("after") or {}
        hub = e["action"] != "login.failure"
        rows.append((t(e["seq"]), t(e["ts"]), t("hub" if hub else "portal"),
                     t(after.get("user", "") if hub else ""),
                     t(after.get("reason", "") if hub else
                       f"{after.get('credential', '')} token"),
                     t(e.get("client")), code((e.get("hash") or "")[:SHORT])))
    add(Table("failed logins", LOGIN_HEAD, rows))


HEAD = ("seq", "time (UTC)", "actor", "role", "action", "object", "reason", "change",
        "client", "request", "hash")


def _changes(report: Report, events: Sequence[Mapping[str, Any]],
             in_force: Configurations) -> None:
    """The study's events, a table per run of events under one configuration."""
    current: object = object()
    rows: list[tuple[Cell, ...]] = []

    def flush() -> None:
        if rows:
            report.blocks.append(Table("changes", HEAD, list(rows)))
            rows.clear()

    for e in events:
        config = in_force.at(int(e["seq"]))
        if config is not current:
            flush()
            current = config
            where = NO_CONFIG if config is None else \
                f"{sha_of(config)} (recorded at event {config['seq']}, {_text(config['ts'])})"
            report.blocks.append(Heading(f"Under configuration {where}", 3))
        rows.append((t(e["seq"]), t(e["ts"]), t(e["actor"]), t(e.get("role")), t(e["action"]),
                     t(f"{e['entity_type']} {e['entity_id']}"), t(e.get("reason")),
                     _change(e.get("before"), e.get("after")), t(e.get("client")),
                     t(e.get("request_id")), code((e.get("hash") or "")[:SHORT])))
    flush()
    if not events:
        report.blocks.append(Table("changes", HEAD, []))


# --- HTML ------------------------------------------------------------------------------------

def _span(s: Span) -> str:
    if s.kind == "br":
        return "<br>"
    text = escape(s.text)
    if s.kind == "code":
        return f"<code>{text}</code>"
    if s.kind in ("ok", "bad"):
        return f"<span class={s.kind}>{text}</span>"
    return text


def _cell(cell: Cell) -> str:
    return "".join(_span(s) for s in cell)


def _table(table: Table) -> str:
    label = escape(table.label)
    if table.row_heads:
        body = "".join(f"<tr><th scope=row>{_cell(row[0])}</th>"
                       + "".join(f"<td>{_cell(c)}</td>" for c in row[1:]) + "</tr>"
                       for row in table.rows)
        return f"<table aria-label='{label}'><tbody>{body}</tbody></table>"
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>"
                   for row in table.rows)
    cols = "".join(f"<th scope=col>{escape(h)}</th>" for h in table.head)
    return (f"<table aria-label='{label}'><thead><tr>{cols}</tr></thead>"
            f"<tbody>{body or f'<tr><td colspan={len(table.head)}>none</td></tr>'}"
            f"</tbody></table>")


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f"<p>{_cell(block.spans)}</p>"
    return _table(block)


def html(report: Report) -> str:
    """The report as one self-contained HTML document."""
    body = "\n".join(_block(b) for b in report.blocks)
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8>
<title>{escape(report.title)}</title><style>{CSS}</style></head>
<body><main>
{body}
</main></body></html>
"""


def render(study: Study, profile: ComplianceProfile, events: Sequence[Mapping[str, Any]],
           grants: Sequence[Grant], signatures: Sequence[tuple[Signature, bool]],
           system: Mapping[str, Any], generated_at: datetime, generated_by: str,
           configs: Iterable[Mapping[str, Any]] = (),
           logins: Sequence[Mapping[str, Any]] = (), logins_total: int = 0) -> str:
    """The report as an HTML document (see :func:`build`)."""
    return html(build(study, profile, events, grants, signatures, system, generated_at,
                      generated_by, list(configs), logins, logins_total))
