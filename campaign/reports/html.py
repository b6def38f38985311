"""report.html: one self-contained page (inline CSS and SVG, no network) a manager can open.

Every number on the page comes from the summary dict that is also written as summary.json;
elements showing one carry ``data-metric="<dotted key>"`` so a test can compare them. Every
value that could come from input data is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from campaign.reports.files import CallRecord

_WIDTH = 640
_LABEL_W = 210
_PALETTE = ("#2563eb", "#0891b2", "#059669", "#65a30d", "#d97706", "#dc2626", "#7c3aed")
_NARROW = {"width": 460, "label_w": 170}  # charts sharing a row with another card
_ANSWERED = "#059669"
_UNANSWERED = "#94a3b8"
# Bucket sizes for "calls over time": the smallest that keeps the chart under ~48 columns.
_BUCKETS_S = (1, 5, 10, 30, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)

_CSS = """
:root{--fg:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1040px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px}
h2{font-size:17px;margin:0 0 12px}
.sub{color:var(--muted);margin:0}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-weight:600;font-size:13px}
.done{background:#dcfce7;color:#166534}.open{background:#fef3c7;color:#92400e}
.dry{background:#e0e7ff;color:#3730a3}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(125px,1fr));gap:12px;
margin:20px 0}
.tile,.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.tile .v{font-size:24px;font-weight:700;white-space:nowrap}
.tile small{font-size:14px;font-weight:600}
.tile .k{color:var(--muted);font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px;
margin-bottom:16px}
.card{margin-bottom:16px}
.grid .card{margin-bottom:0}
table{border-collapse:collapse;width:100%}
td,th{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:var(--muted);font-style:italic}
svg{max-width:100%;height:auto;display:block}
svg text{font:12px system-ui,sans-serif;fill:var(--fg)}
svg .axis{fill:var(--muted)}
footer{color:var(--muted);font-size:12px;margin-top:24px}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _metric(key: str, value: object) -> str:
    """A span holding one summary.json value, findable by a test."""
    shown = "" if value is None else value
    return f'<span data-metric="{_e(key)}">{_e(shown)}</span>'


def _short(label: str, limit: int = 34) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def hbar_chart(
    items: Sequence[tuple[str, int]],
    *,
    total: int | None = None,
    title: str = "",
    width: int = _WIDTH,
    label_w: int = _LABEL_W,
) -> str:
    """Horizontal bars with a label and a count (and a share of ``total`` if given)."""
    if not items:
        return '<p class="empty">Nothing to show yet.</p>'
    row_h = 28
    height = row_h * len(items) + 6
    top = max(max(v for _, v in items), 1)
    bar_room = width - label_w - 100
    parts = [
        f'<svg role="img" aria-label="{_e(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, value) in enumerate(items):
        y = 3 + i * row_h
        bar_w = max(round(bar_room * value / top), 2 if value else 0)
        share = f" ({100 * value / total:.0f}%)" if total else ""
        color = _PALETTE[i % len(_PALETTE)]
        parts.append(
            f"<g><title>{_e(label)}: {value}{share}</title>"
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">'
            f"{_e(_short(label, label_w // 7))}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="{row_h - 8}" rx="3" '
            f'fill="{color}"/>'
            f'<text x="{label_w + bar_w + 6}" y="{y + 17}">{value}{_e(share)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bucket_size(span_s: float) -> int:
    return next((b for b in _BUCKETS_S if span_s / b <= 48), _BUCKETS_S[-1])


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def calls_over_time_chart(calls: Sequence[CallRecord]) -> str:
    """Columns of calls placed per time bucket, answered ones stacked at the bottom."""
    if not calls:
        return '<p class="empty">No call has been placed yet.</p>'
    stamps = [_aware(c.placed_at).timestamp() for c in calls]
    first, last = min(stamps), max(stamps)
    size = _bucket_size(last - first)
    start = int(first // size * size)
    n_buckets = int((last - start) // size) + 1
    placed = [0] * n_buckets
    answered = [0] * n_buckets
    for call, ts in zip(calls, stamps, strict=True):
        index = int((ts - start) // size)
        placed[index] += 1
        answered[index] += call.status == "completed"
    top = max(placed)
    height, left, bottom = 220, 40, 30
    plot_h = height - bottom - 10
    col_w = (_WIDTH - left - 10) / n_buckets
    fmt = "%H:%M:%S" if size < 60 else "%H:%M" if last - first < 86400 else "%d %b %H:%M"
    parts = [
        f'<svg role="img" aria-label="calls over time" viewBox="0 0 {_WIDTH} {height}" '
        f'width="{_WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text class="axis" x="{left - 6}" y="16" text-anchor="end">{top}</text>',
        f'<text class="axis" x="{left - 6}" y="{10 + plot_h}" text-anchor="end">0</text>',
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{_WIDTH - 10}" y2="{10 + plot_h}" '
        f'stroke="#cbd5e1"/>',
    ]
    for i in range(n_buckets):
        x = left + i * col_w + 1
        moment = datetime.fromtimestamp(start + i * size, tz=UTC).strftime(fmt)
        # Answered calls sit at the bottom of the column, the rest on top of them.
        segments = (
            (0, answered[i], _ANSWERED),
            (answered[i], placed[i] - answered[i], _UNANSWERED),
        )
        for offset, value, color in segments:
            h = plot_h * value / top
            y = 10 + plot_h - plot_h * offset / top - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(col_w - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{moment}Z: {placed[i]} placed, '
                f"{answered[i]} answered</title></rect>"
            )
    for i in sorted({0, n_buckets // 2, n_buckets - 1}):
        label = datetime.fromtimestamp(start + i * size, tz=UTC).strftime(fmt)
        x = left + i * col_w + col_w / 2
        parts.append(
            f'<text class="axis" x="{x:.1f}" y="{height - 8}" text-anchor="middle">{label}</text>'
        )
    parts.append("</svg>")
    legend = (
        f'<p class="sub"><span style="color:{_ANSWERED}">■</span> answered '
        f'<span style="color:{_UNANSWERED}">■</span> not answered · one column = '
        f"{_e(_duration(size))} (UTC)</p>"
    )
    return "".join(parts) + legend


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day" + ("s" if seconds > 86400 else "")
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def _tiles(summary: Mapping[str, Any]) -> str:
    cost = summary["cost"]
    tiles = [
        ("Rows in the input", _metric("rows_total", summary["rows_total"])),
        ("Valid numbers", _metric("funnel.valid", summary["funnel"]["valid"])),
        ("People called", _metric("funnel.called", summary["funnel"]["called"])),
        ("Answered", _metric("funnel.answered", summary["funnel"]["answered"])),
        ("Goal achieved", _metric("funnel.goal_achieved", summary["funnel"]["goal_achieved"])),
        ("Calls placed", _metric("calls_placed", summary["calls_placed"])),
        (
            "Cost",
            _metric("cost.amount", cost["amount"])
            + f" <small>{_metric('cost.currency', cost['currency'])}</small>",
        ),
    ]
    cells = "".join(
        f'<div class="tile"><div class="v">{v}</div><div class="k">{k}</div></div>'
        for k, v in tiles
    )
    return f'<section class="tiles">{cells}</section>'


def _header(summary: Mapping[str, Any]) -> str:
    if summary["finished"]:
        status = '<span class="badge done">Finished</span>'
    else:
        due = summary["next_due"]
        why = summary["next_due_reason"]
        more = f" — next due {_e(due)}" if due else ""
        more += f" ({_e(why)})" if why else ""
        status = f'<span class="badge open">In progress</span>{more}'
    dry = ' <span class="badge dry">Dry run: nothing was sent</span>' if summary["dry_run"] else ""
    return (
        f"<header><h1>{_e(summary['campaign'])}</h1>"
        f'<p class="sub">{status}{dry}</p>'
        f'<p class="sub">mode {_e(summary["mode"])} · run {_e(summary["started_at"])} → '
        f"{_e(summary['ended_at'])} · calling hours: {_e(summary['calling_hours'])}</p></header>"
    )


def _state_table(summary: Mapping[str, Any]) -> str:
    body = "".join(
        f'<tr><td>{_e(state)}</td><td class="n">{_metric("by_state." + state, count)}</td></tr>'
        for state, count in summary["by_state"].items()
    )
    return f'<table><tr><th>state</th><th class="n">rows</th></tr>{body}</table>'


def _cost_table(summary: Mapping[str, Any]) -> str:
    cost = summary["cost"]
    currency = _e(cost["currency"] or "")
    amount = float(cost["amount"])
    called = summary["calls_placed"]
    goals = summary["funnel"]["goal_achieved"]
    per_call = f"{amount / called:.2f} {currency}" if called else "—"
    per_goal = f"{amount / goals:.2f} {currency}" if goals else "—"
    rows = [
        ("Total cost", f"{_metric('cost.amount', cost['amount'])} {currency}"),
        ("Calls with a known cost", _metric("cost.calls_costed", cost["calls_costed"])),
        ("Average per call placed", per_call),
        ("Cost per goal achieved", per_goal),
        ("Talk time (minutes)", f"{summary['talk_time_s'] / 60:.1f}"),
        ("API requests spent", _metric("requests_spent", summary["requests_spent"])),
    ]
    body = "".join(f'<tr><td>{k}</td><td class="n">{v}</td></tr>' for k, v in rows)
    note = ""
    if called and not cost["calls_costed"]:
        note = '<p class="empty">No call has a cost reported by the API yet.</p>'
    return f"<table>{body}</table>{note}"


def _card(title: str, content: str) -> str:
    return f'<section class="card"><h2>{_e(title)}</h2>{content}</section>'


def render_report(summary: Mapping[str, Any], calls: Sequence[CallRecord]) -> str:
    """The whole report.html page for ``summary`` (as in summary.json) and the calls made."""
    funnel = summary["funnel"]
    funnel_items = [
        ("rows in the input", funnel["rows"]),
        ("valid numbers", funnel["valid"]),
        ("callable", funnel["callable"]),
        ("called", funnel["called"]),
        ("answered", funnel["answered"]),
        ("goal achieved", funnel["goal_achieved"]),
    ]
    outcomes = hbar_chart(
        list(summary["by_outcome"].items()), total=funnel["answered"], title="outcomes", **_NARROW
    )
    statuses = hbar_chart(
        list(summary["by_last_status"].items()),
        total=funnel["called"],
        title="last status",
        **_NARROW,
    )
    rejects = hbar_chart(
        list(summary["rejects_by_reason"].items()), title="rows not called", label_w=330
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(summary['campaign'])} — campaign report</title><style>{_CSS}</style></head>"
        f"<body><main>{_header(summary)}{_tiles(summary)}"
        + _card("Funnel", hbar_chart(funnel_items, total=funnel["rows"], title="funnel"))
        + '<div class="grid">'
        + _card("Outcomes of answered calls (share of answered)", outcomes)
        + _card("How the last attempt ended (share of people called)", statuses)
        + "</div>"
        + _card("Calls over time", calls_over_time_chart(calls))
        + _card("Rows not called, by reason", rejects)
        + '<div class="grid">'
        + _card("Rows by state", _state_table(summary))
        + _card("Cost", _cost_table(summary))
        + "</div>"
        + f"<footer>Input: {_e(summary['input_path'])} · the same numbers are in summary.json "
        "and one line per input row in results.csv.</footer></main></body></html>\n"
    )
