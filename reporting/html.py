"""Self-contained HTML pages: one file, plotly.js inlined, no server or CDN needed."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

#: A column of a rendered table: header and cell formatter.
Column = tuple[str, Callable[[object], str]]

PALETTE: tuple[str, ...] = ("#1f6f8b", "#e07a5f", "#3d9970", "#f2cc8f", "#81b29a", "#6d597a", "#b56576", "#355070")
POSITIVE, NEGATIVE, NEUTRAL = "#3d9970", "#c0392b", "#8e9aaf"

_CSS = """
:root { --ink:#1d2733; --muted:#5b6675; --line:#e3e7ed; --accent:#1f6f8b; --good:#3d9970; --bad:#c0392b; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink); background:#f6f8fa; }
header { background:var(--accent); color:#fff; padding:24px 40px; }
header h1 { margin:0 0 4px; font-size:26px; } header p { margin:0; opacity:.9; }
nav { padding:8px 40px; background:#fff; border-bottom:1px solid var(--line); position:sticky; top:0; z-index:5; }
nav a { margin-right:18px; color:var(--accent); text-decoration:none; font-weight:600; }
main { max-width:1200px; margin:0 auto; padding:16px 40px 60px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:20px 24px; margin:20px 0; }
section h2 { margin-top:0; } .explain { color:var(--muted); max-width:900px; }
.note { background:#fff8e6; border-left:4px solid #f2cc8f; padding:8px 12px; margin:10px 0; }
.cards { display:flex; flex-wrap:wrap; gap:14px; } .card { flex:1 1 220px; border:1px solid var(--line); border-radius:8px; padding:14px 16px; }
.card .label { color:var(--muted); font-size:13px; text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:28px; font-weight:700; } .card .sub { color:var(--muted); font-size:13px; }
table { border-collapse:collapse; width:100%; margin:10px 0; font-size:14px; }
th, td { text-align:right; padding:6px 10px; border-bottom:1px solid var(--line); }
th:first-child, td:first-child { text-align:left; } th { color:var(--muted); font-weight:600; }
.good { color:var(--good); font-weight:600; } .bad { color:var(--bad); font-weight:600; }
.chart { margin:8px 0 4px; } footer { color:var(--muted); text-align:center; font-size:13px; padding:20px; }
"""


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package (inlined once per page)."""
    return get_plotlyjs()


def esc(text: object) -> str:
    """HTML-escape any value."""
    return html.escape(str(text))


def figure(fig: go.Figure, *, height: int = 380) -> str:
    """A plotly figure as a ``<div>`` using the page's inlined plotly.js."""
    fig.update_layout(
        height=height, margin=dict(l=60, r=20, t=50, b=50), template="plotly_white",
        font=dict(family="system-ui, sans-serif", size=13), colorway=list(PALETTE),
    )
    body = fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})
    return f'<div class="chart">{body}</div>'


def table(frame: pd.DataFrame, columns: Mapping[str, Column], *, classes: Callable[[pd.Series], str] | None = None) -> str:
    """An HTML table of ``frame``'s ``columns`` (name → (header, formatter))."""
    head = "".join(f"<th>{esc(h)}</th>" for h, _ in columns.values())
    rows = []
    for _, row in frame.iterrows():
        cls = f' class="{classes(row)}"' if classes else ""
        cells = "".join(f"<td>{esc(f(row[c]))}</td>" for c, (_, f) in columns.items())
        rows.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def cards(items: Sequence[tuple[str, str, str]]) -> str:
    """Headline number cards: (label, value, sub-text)."""
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{esc(value)}</div>'
        f'<div class="sub">{esc(sub)}</div></div>'
        for label, value, sub in items
    ) + "</div>"


def paragraph(text: str, cls: str = "explain") -> str:
    """A paragraph of plain-language explanation."""
    return f'<p class="{cls}">{esc(text)}</p>'


def note(text: str) -> str:
    """A highlighted remark (missing data, caveats)."""
    return f'<div class="note">{esc(text)}</div>'


@dataclass(frozen=True)
class Section:
    """A titled part of a page; ``body`` is trusted HTML built with this module."""

    id: str
    title: str
    body: str


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """A complete, self-contained HTML document."""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{_CSS}</style><script type=\"text/javascript\">{plotly_js()}</script></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav><main>{body}</main>"
        f"<footer>Generated by nextbest on {stamp}. Intervals are 95% unless stated.</footer></body></html>"
    )
