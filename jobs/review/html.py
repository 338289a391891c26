"""HTML for the review site: every page in one layout, every value escaped, the one script pinned by its hash.

Values come from models and file names, so nothing is ever written into a page unescaped: text through
`esc` (html.escape, quotes included), data for the script as JSON inside a `<script type="application/json">`
with `<`, `>` and `&` written as \\u escapes (no `</script>` can close it early), and the script reads that
data with textContent and writes it with textContent only. The Content-Security-Policy allows no network at
all, inline styles, and only the page's own script by its sha256 — an injected `onerror=` or `<script>` would
not run even if one got through.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json

from jobs.review.assets import SCRIPT, STYLE


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def json_data(element_id: str, value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def _script_hash() -> str:
    digest = hashlib.sha256(SCRIPT.encode()).digest()
    return "sha256-" + base64.b64encode(digest).decode()


CSP = (
    "default-src 'none'; "
    f"script-src '{_script_hash()}'; "
    "style-src 'unsafe-inline'; "
    "img-src data:; "
    "media-src file: 'self'; "
    "connect-src 'none'; form-action 'none'; base-uri 'none'"
)


def page(title: str, body: str, *, nav: list[tuple[str, str]]) -> str:
    links = " · ".join(f'<a href="{esc(href)}">{esc(label)}</a>' for href, label in nav)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style></head>\n"
        f"<body><nav>{links}</nav>\n<h1>{esc(title)}</h1>\n{body}\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def table(
    columns: list[str], rows: list[list[object]], *, cls: str = "", row_attrs: list[str] | None = None
) -> str:
    """A table of escaped cells; `row_attrs` are attribute strings the caller built with `esc` already."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        attrs = f" {row_attrs[i]}" if row_attrs else ""
        body.append(f"<tr{attrs}>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>")
    klass = f' class="{esc(cls)}"' if cls else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = round(seconds)
    return f"{whole // 3600:d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
