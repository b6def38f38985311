"""The report's charts: bar lists as HTML (labels wrap, nothing cut) and calls over time.

A bar list is a table: the label wraps however long it is, and count and share are
printed beside the bar, so nothing lives only in a tooltip (a mailed file or a screenshot
has none). Calls over time is inline SVG with its numbers written on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING

from campaign.reporting.labels import TONE_COLOURS, TONE_MEANINGS, Tone

if TYPE_CHECKING:
    from campaign.reporting.files import CallRecord

_WIDTH = 640
_ANSWERED = TONE_COLOURS["good"]
_UNANSWERED = TONE_COLOURS["neutral"]
# Bucket sizes for "calls over time": the smallest that keeps the chart under ~48 columns.
_BUCKETS_S = (1, 5, 10, 30, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)

Bar = tuple[str, int, Tone]  # label (words), count, colour meaning


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def bar_list(bars: Sequence[Bar], *, total: int | None = None, title: str = "") -> str:
    """Bars as table rows: wrapped label, bar, count, share of ``total``."""
    if not bars:
        return '<p class="empty">Nothing to show yet.</p>'
    top = max(max(count for _, count, _ in bars), 1)
    rows = []
    for text, count, kind in bars:
        width = max(100 * count / top, 0.6) if count else 0.0  # a count of 1 stays visible
        share = f"{100 * count / total:.0f}%" if total else ""
        rows.append(
            f'<tr><td class="label">{_e(text)}</td>'
            f'<td class="bar"><span class="fill {kind}" style="width:{width:.1f}%"></span></td>'
            f'<td class="n">{count:,}</td><td class="n share">{share}</td></tr>'
        )
    return f'<table class="bars" aria-label="{_e(title)}">{"".join(rows)}</table>'


def legend() -> str:
    """What the bar colours mean (once, near the top of the page)."""
    items = " · ".join(
        f'<span class="key"><span class="swatch {kind}"></span>{_e(meaning)}</span>'
        for kind, meaning in TONE_MEANINGS
    )
    return f'<p class="legend">Bar colours: {items}</p>'


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
    height, left, bottom, head = 236, 40, 30, 26
    plot_h = height - bottom - head
    col_w = (_WIDTH - left - 10) / n_buckets
    fmt = "%H:%M:%S" if size < 60 else "%H:%M" if last - first < 86400 else "%d %b %H:%M"
    base = head + plot_h
    parts = [
        f'<svg role="img" aria-label="calls over time" viewBox="0 0 {_WIDTH} {height}" '
        f'width="{_WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text class="axis" x="{left - 6}" y="{head + 4}" text-anchor="end">{top}</text>',
        f'<text class="axis" x="{left - 6}" y="{base}" text-anchor="end">0</text>',
        f'<line x1="{left}" y1="{base}" x2="{_WIDTH - 10}" y2="{base}" stroke="#cbd5e1"/>',
    ]
    # Counts are written above the columns when they fit, else above the busiest one.
    write_all = col_w >= 22
    for i in range(n_buckets):
        x = left + i * col_w + 1
        moment = datetime.fromtimestamp(start + i * size, tz=UTC).strftime(fmt)
        segments = (
            (0, answered[i], _ANSWERED),
            (answered[i], placed[i] - answered[i], _UNANSWERED),
        )
        for offset, value, color in segments:
            h = plot_h * value / top
            y = base - plot_h * offset / top - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(col_w - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{moment} UTC: {placed[i]} placed, '
                f"{answered[i]} answered</title></rect>"
            )
        if placed[i] and (write_all or placed[i] == top):
            y = base - plot_h * placed[i] / top - 4
            parts.append(
                f'<text class="count" x="{x + col_w / 2 - 1:.1f}" y="{y:.1f}" '
                f'text-anchor="middle">{placed[i]}</text>'
            )
    for i in sorted({0, n_buckets // 2, n_buckets - 1}):
        label = datetime.fromtimestamp(start + i * size, tz=UTC).strftime(fmt)
        x = left + i * col_w + col_w / 2
        parts.append(
            f'<text class="axis" x="{x:.1f}" y="{height - 8}" text-anchor="middle">{label}</text>'
        )
    parts.append("</svg>")
    answered_total = sum(answered)
    legend_html = (
        f'<p class="sub"><span class="swatch good"></span>answered ({answered_total:,}) '
        f'<span class="swatch neutral"></span>not answered ({sum(placed) - answered_total:,})'
        f" · one column = {_e(_duration(size))} (times in UTC)</p>"
    )
    return "".join(parts) + legend_html


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day" + ("s" if seconds > 86400 else "")
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"
