"""The admin page's HTML: plain server-rendered markup, every value escaped, no scripts.

A captured message's HTML body is cleaned with nh3 (the Ammonia sanitiser: no scripts, no event
handlers, no forms, no remote references) and shown in a sandboxed iframe whose document also
falls under the page's Content-Security-Policy (images only as data: URLs), so nothing a message
contains can run or call home.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

import nh3

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2733; background: #f5f7fa; }
header { background: #1d2733; color: #fff; padding: 10px 20px; display: flex;
  justify-content: space-between; align-items: center; }
header form { margin: 0; } main { padding: 16px 20px; }
section { background: #fff; border: 1px solid #d8dee6; border-radius: 6px; padding: 12px 16px;
  margin-bottom: 16px; }
h1 { font-size: 18px; margin: 0; } h2 { font-size: 16px; margin: 0 0 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e6eaef;
  vertical-align: top; }
th { color: #55606e; font-weight: 600; } .muted { color: #7a8594; }
.error { color: #a61b1b; } iframe { width: 100%; height: 420px; border: 1px solid #d8dee6; }
pre { white-space: pre-wrap; }
"""

# What survives in a captured HTML body: formatting, links (shown, not followed from our page:
# the frame is sandboxed), tables; images only as data: URLs.
_ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "hr", "i", "img",
    "li", "ol", "p", "pre", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "u",
    "ul",
}  # fmt: skip


def page(title: str, body: str, user: str | None = None) -> bytes:
    logout = ""
    if user:
        logout = (
            f'<form method="post" action="/admin/logout"><span>{escape(user)}</span> '
            '<button type="submit">Log out</button></form>'
        )
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)} - mailsuite</title><style>{STYLE}</style></head><body>"
        f"<header><h1>mailsuite · {escape(title)}</h1>{logout}</header><main>{body}</main>"
        "</body></html>\n"
    ).encode()


def login_form(error: str = "") -> bytes:
    message = f'<p class="error">{escape(error)}</p>' if error else ""
    return page(
        "admin login",
        "<section><h2>Log in</h2>"
        f"{message}"
        '<form method="post" action="/admin/login">'
        '<p><label>Address <input name="user" autocomplete="username" required></label></p>'
        '<p><label>Password <input name="password" type="password" '
        'autocomplete="current-password" required></label></p>'
        '<p><button type="submit">Log in</button></p></form></section>',
    )


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def queue_section(entries: list[dict[str, Any]]) -> str:
    rows = []
    now = time.time()
    for entry in entries:
        recipients = "<br>".join(
            f"{escape(r['address'])} <span class=\"muted\">{escape(r['state'])}"
            f"{' · ' + escape(r['reply']) if r.get('reply') else ''}</span>"
            for r in entry["recipients"]
        )
        rows.append(
            [
                escape(entry["id"]),
                _age(now - entry["created"]),
                escape(entry["sender"] or "<>"),
                recipients,
            ]
        )
    table = _table(["id", "age", "sender", "recipients"], rows, "The queue is empty.")
    return f"<section><h2>Queue ({len(entries)})</h2>{table}</section>"


def report_section(report: dict[str, Any] | None) -> str:
    if report is None:
        return '<section><h2>Last 24 hours</h2><p class="muted">No delivery log.</p></section>'
    rows = [
        [escape(str(domain)), *(escape(str(counts.get(k, 0))) for k in _REPORT_COLUMNS)]
        for domain, counts in sorted(report.get("domains", {}).items())
    ]
    totals = report.get("totals", {})
    summary = " · ".join(f"{escape(str(k))}: {escape(str(v))}" for k, v in totals.items())
    table = _table(["domain", *_REPORT_COLUMNS], rows, "Nothing delivered in this period.")
    return f"<section><h2>Last 24 hours</h2><p>{summary}</p>{table}</section>"


_REPORT_COLUMNS = ["local", "delivered", "deferred", "bounced", "expired"]


def captures_section(captures: list[dict[str, Any]] | None) -> str:
    if captures is None:
        return ""
    rows = []
    for capture in captures:
        link = escape(f"/admin/sandbox/{capture['id']}", quote=True)
        subject = escape(capture.get("subject") or "(no subject)")
        recipients = capture.get("envelope", {}).get("recipients") or capture.get("to") or []
        if isinstance(recipients, str):
            recipients = [recipients]
        rows.append(
            [
                f'<a href="{link}">{subject}</a>',
                escape(str(capture.get("from") or "")),
                escape(", ".join(map(str, recipients))),
                escape(str(capture.get("date") or "")),
            ]
        )
    table = _table(["subject", "from", "to", "date"], rows, "No captured message.")
    return f"<section><h2>Sandbox: captured messages ({len(captures)})</h2>{table}</section>"


def message_page(message: dict[str, Any], user: str) -> bytes:
    headers = _table(
        ["header", "value"],
        [[escape(str(name)), escape(str(value))] for name, value in message.get("headers", [])],
        "No header.",
    )
    parts = []
    for part in message.get("parts", []):
        kind = part.get("content_type", "")
        if kind == "text/html" and part.get("text") is not None:
            clean = nh3.clean(
                part["text"],
                tags=_ALLOWED_TAGS,
                url_schemes={"http", "https", "mailto", "data"},
                link_rel="noopener noreferrer nofollow",
            )
            parts.append(
                f"<h2>HTML (sanitised)</h2><iframe sandbox srcdoc=\"{escape(clean, quote=True)}\">"
                "</iframe>"
            )
        elif kind.startswith("text/") and part.get("text") is not None:
            parts.append(f"<h2>{escape(kind)}</h2><pre>{escape(part['text'])}</pre>")
        else:
            name = part.get("filename") or "(unnamed)"
            parts.append(f'<p class="muted">Attachment {escape(name)} ({escape(kind)})</p>')
    body = (
        '<p><a href="/admin">&larr; back</a></p>'
        f"<section><h2>Headers</h2>{headers}</section><section>{''.join(parts)}</section>"
    )
    return page(message.get("subject") or "message", body, user)
