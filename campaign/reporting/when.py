"""The report's "when to call" cards, from summary.json's ``when_to_call``: heatmaps of the
answer and goal rates by the recipient's local hour and weekday (inline SVG with the
numbers written in the cells), rate tables with small SVG bars for the other buckets, and
how retries were spread over the parts of the day. Every value is HTML-escaped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, Literal

from campaign.phones.countries import country_name
from campaign.planning.dayparts import DAYPARTS
from campaign.reporting.analysis import DAYPART_NAMES, WEEKDAYS
from campaign.reporting.labels import TONE_COLOURS
from campaign.reporting.sections import e, metric, table

Rate = Literal["answered", "goal"]
_KEY = "when_to_call"
_CELL_W, _CELL_H, _LABEL_W, _HEAD_H, _GAP = 36, 34, 44, 22, 6
# Five shades per rate, light to dark; text is white on the two darkest.
_SHADES: dict[Rate, tuple[str, ...]] = {
    "answered": ("#eff6ff", "#bfdbfe", "#60a5fa", "#2563eb", "#1e3a8a"),
    "goal": ("#f0fdf4", "#bbf7d0", "#4ade80", "#16a34a", "#14532d"),
}
_BINS = ("0–19%", "20–39%", "40–59%", "60–79%", "80–100%")
_EMPTY_CELL = "#cbd5e1"  # the outline of a square without calls
_RATE_COLOURS: dict[Rate, str] = {"answered": "#2563eb", "goal": TONE_COLOURS["good"]}
_RATE_WORDS: dict[Rate, str] = {"answered": "answered", "goal": "goal achieved"}
DAYPART_COLOURS = {
    "morning": "#fcd34d",
    "afternoon": "#fb923c",
    "evening": "#7c3aed",
    "night": "#334155",
}
_DAYPART_NAMES: dict[str, tuple[str, str]] = {
    **{part: (part.capitalize(), f"{start:02d}–{end:02d}") for part, start, end in DAYPARTS},
    "night": ("Night", f"{DAYPARTS[-1][2]:02d}–{DAYPARTS[0][1]:02d}"),
}
_NUMBER_TYPE_LABELS = {
    "mobile": "Mobile",
    "landline": "Landline",
    "other": "Other",
    "unknown": "Unknown",
}
NUMBER_TYPE_NOTE = (
    "Other: VoIP and toll-free numbers, and US and Canadian numbers, whose numbering plan "
    "does not tell mobile from landline. Unknown: rows planned before the type was kept "
    "(the next run fills it in)."
)
NIGHT_NOTE = (
    f"Night ({_DAYPART_NAMES['night'][1]}) only holds calls of campaigns with "
    "calling_hours: unrestricted."
)
RULE = (
    "Unless the campaign sets retry.dayparts: any, a retry after no answer or busy is due "
    "at the first moment, at least retry.min_interval after the call ended, that falls in a "
    "part of the recipient's day ("
    + ", ".join(f"{part} {_DAYPART_NAMES[part][1]}" for part, _, _ in DAYPARTS)
    + ", local time) not tried yet for that person and inside their calling window; once "
    "all three were tried, the least-tried part."
)


def _bin(pct: float) -> int:
    return min(int(pct // 20), len(_BINS) - 1)


def _cell(
    x: float, y: float, facts: Mapping[str, Any] | None, rate: Rate, title: str, key: str
) -> str:
    """One square of a heatmap: its colour, its rate and the calls behind it.

    The count carries ``data-metric`` (its summary.json key) in the answer-rate map only:
    both maps show the same counts.
    """
    if facts is None:
        return (
            f'<rect x="{x + 0.5}" y="{y + 0.5}" width="{_CELL_W - 3}" height="{_CELL_H - 3}" '
            f'rx="3" fill="none" stroke="{_EMPTY_CELL}"><title>{e(title)}: no call</title></rect>'
        )
    pct = float(facts[f"{rate}_pct"])
    shade = _bin(pct)
    light = " light" if shade >= 3 else ""
    calls = int(facts["calls"])
    count = f"{calls / 1000:.1f}k" if calls >= 1000 else str(calls)
    if rate == "answered" and calls < 1000:
        count = f'<tspan data-metric="{e(key)}.calls">{calls}</tspan>'
    centre = x + (_CELL_W - 2) / 2
    words = (
        f"{title}: {calls:,} calls, {facts['answered']:,} answered "
        f"({facts['answered_pct']}%), {facts['goal_achieved']:,} goals ({facts['goal_pct']}%)"
    )
    return (
        f'<g><title>{e(words)}</title><rect x="{x}" y="{y}" width="{_CELL_W - 2}" '
        f'height="{_CELL_H - 2}" rx="3" fill="{_SHADES[rate][shade]}"/>'
        f'<text class="pct{light}" x="{centre}" y="{y + 14}" text-anchor="middle">'
        f"{pct:.0f}%</text>"
        f'<text class="of{light}" x="{centre}" y="{y + 27}" text-anchor="middle">'
        f"of {count}</text></g>"
    )


def heatmap(when: Mapping[str, Any], rate: Rate) -> str:
    """Weekdays × recipient-local hours, each square coloured by ``rate`` and labelled
    with it and its calls; an "All days" row and an "All hours" column beside them."""
    cells: Mapping[str, Mapping[str, Any]] = when["by_hour_weekday"]
    if not cells:
        return '<p class="empty">No call with a known local time has ended yet.</p>'
    hours = range(min(map(int, when["by_hour"])), max(map(int, when["by_hour"])) + 1)
    width = _LABEL_W + (len(hours) + 1) * _CELL_W + _GAP
    height = _HEAD_H + (len(WEEKDAYS) + 1) * _CELL_H + _GAP
    total_x = _LABEL_W + len(hours) * _CELL_W + _GAP
    total_y = _HEAD_H + len(WEEKDAYS) * _CELL_H + _GAP
    label = f"share of calls {_RATE_WORDS[rate]} by local hour and weekday"
    parts = [
        f'<svg role="img" aria-label="{e(label)}" class="heatmap" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, hour in enumerate(hours):
        x = _LABEL_W + i * _CELL_W + (_CELL_W - 2) / 2
        parts.append(
            f'<text class="axis" x="{x}" y="{_HEAD_H - 8}" text-anchor="middle">{hour:02d}</text>'
        )
    parts.append(
        f'<text class="axis" x="{total_x + (_CELL_W - 2) / 2}" y="{_HEAD_H - 8}" '
        'text-anchor="middle">All</text>'
    )
    for j, day in enumerate(WEEKDAYS):
        name, by_hour, day_total = day.capitalize(), cells.get(day, {}), when["by_weekday"].get(day)
        y = _HEAD_H + j * _CELL_H
        parts.append(
            f'<text class="axis" x="{_LABEL_W - 8}" y="{y + 21}" text-anchor="end">{name}</text>'
        )
        for i, hour in enumerate(hours):
            key = f"{_KEY}.by_hour_weekday.{day}.{hour:02d}"
            title = f"{name} {hour:02d}:00–{hour + 1:02d}:00"
            facts = by_hour.get(f"{hour:02d}")
            parts.append(_cell(_LABEL_W + i * _CELL_W, y, facts, rate, title, key))
        key = f"{_KEY}.by_weekday.{day}"
        parts.append(_cell(total_x, y, day_total, rate, f"{name}, all hours", key))
    parts.append(
        f'<text class="axis" x="{_LABEL_W - 8}" y="{total_y + 21}" text-anchor="end">All</text>'
    )
    for i, hour in enumerate(hours):
        key = f"{_KEY}.by_hour.{hour:02d}"
        facts = when["by_hour"].get(f"{hour:02d}")
        title = f"All days {hour:02d}:00–{hour + 1:02d}:00"
        parts.append(_cell(_LABEL_W + i * _CELL_W, total_y, facts, rate, title, key))
    everything = {k: when[k] for k in ("calls", "answered", "goal_achieved")}
    everything |= {"answered_pct": when["answered_pct"], "goal_pct": when["goal_pct"]}
    parts.append(_cell(total_x, total_y, everything, rate, "All calls", _KEY))
    parts.append("</svg>")
    return f'<div class="heat">{"".join(parts)}</div>{_heat_legend(rate)}'


def _heat_legend(rate: Rate) -> str:
    keys = "".join(
        f'<span class="key"><span class="swatch" style="background:{shade}"></span>{name}</span>'
        for shade, name in zip(_SHADES[rate], _BINS, strict=True)
    )
    return (
        f'<p class="legend">Share of calls {_RATE_WORDS[rate]}: {keys} · '
        '"of n": calls that ended, started in that hour · blank: no call</p>'
    )


def rate_bar(pct: float | None, rate: Rate) -> str:
    """A small SVG bar of a rate (the caller writes the rate after it)."""
    if pct is None:
        return ""
    fill = _RATE_COLOURS[rate]
    return (
        '<svg class="rate" width="48" height="10" viewBox="0 0 48 10" aria-hidden="true">'
        '<rect width="48" height="10" rx="2" fill="#e2e8f0"/>'
        f'<rect width="{0.48 * pct:.1f}" height="10" rx="2" fill="{fill}"/></svg>'
    )


def rates_table(
    when: Mapping[str, Any],
    name: str,
    head: str,
    words: Callable[[str], str],
    *,
    note: str = "",
) -> str:
    """Calls, answered % and goal % per bucket of ``when[name]``, with small bars."""
    buckets: Mapping[str, Mapping[str, Any]] = when[name]
    if not buckets:
        return '<p class="empty">No call has ended yet.</p>'
    rows = []
    for bucket, facts in buckets.items():
        key = f"{_KEY}.{name}.{bucket}"
        rows.append(
            [
                words(bucket),
                metric(f"{key}.calls", facts["calls"]),
                rate_bar(facts["answered_pct"], "answered")
                + metric(f"{key}.answered_pct", facts["answered_pct"])
                + "%",
                rate_bar(facts["goal_pct"], "goal")
                + metric(f"{key}.goal_pct", facts["goal_pct"])
                + "%",
            ]
        )
    head_row = [head, "Calls", "Answered", "Goal achieved"]
    shown_note = f'<p class="sub">{e(note)}</p>' if note else ""
    return table(head_row, rows, numeric=frozenset({1, 2, 3})) + shown_note


def daypart_words(part: str) -> str:
    """'morning' → 'Morning 08–12'."""
    name, hours = _DAYPART_NAMES.get(part, (part, ""))
    return f'{e(name)} <span class="code nowrap">{e(hours)}</span>'


def _daypart_head(part: str) -> str:
    """A column head: the part's colour, its name, its hours below."""
    name, hours = _DAYPART_NAMES.get(part, (part, ""))
    return (
        f'<span class="swatch" style="background:{DAYPART_COLOURS[part]}"></span>{e(name)}'
        f'<br><span class="code">{e(hours)}</span>'
    )


def number_type_words(kind: str) -> str:
    """'landline' → 'Landline'; what 'other' and 'unknown' hold."""
    return e(_NUMBER_TYPE_LABELS.get(kind, kind))


def country_words(code: str) -> str:
    """'GB' → 'United Kingdom GB'."""
    if code == "unknown":
        return "Unknown"
    return f'{e(country_name(code))} <span class="code">{e(code)}</span>'


def attempt_words(number: str) -> str:
    """'1' → 'First call'; '2' → 'Retry 1'."""
    return "First call" if number == "1" else f"Retry {int(number) - 1}"


def night_words(day: str) -> str:
    """'2026-11-29' → 'Sun 29 Nov 2026'."""
    return e(date.fromisoformat(day).strftime("%a %d %b %Y"))


def retry_spread(when: Mapping[str, Any]) -> str:
    """Calls per attempt and part of the recipient's day, and retries moved to a new part."""
    spread = when["retry_dayparts"]
    by_attempt: Mapping[str, Mapping[str, int]] = spread["by_attempt"]
    rule = f'<p class="sub">{e(RULE)}</p>'
    if not by_attempt:
        return '<p class="empty">No call with a known local time has ended yet.</p>' + rule
    rows = []
    for number, counts in by_attempt.items():
        total = sum(counts.values())
        key = f"{_KEY}.retry_dayparts.by_attempt.{number}"
        rows.append(
            [
                attempt_words(number),
                *(metric(f"{key}.{part}", counts[part]) for part in DAYPART_NAMES),
                _spread_bar(counts, total),
            ]
        )
    head = ["Attempt", *(_daypart_head(part) for part in DAYPART_NAMES), "Spread"]
    retries, moved = spread["retries"], spread["in_new_daypart"]
    share = f" ({100 * moved / retries:.0f}%)" if retries else ""
    summary = (
        f'<p class="sub">{metric(f"{_KEY}.retry_dayparts.in_new_daypart", moved)} of '
        f"{metric(f'{_KEY}.retry_dayparts.retries', retries)} retries{share} started in a part "
        "of the day that the same person's earlier calls had not tried.</p>"
    )
    spread_table = table(head, rows, numeric=frozenset({1, 2, 3, 4}), nowrap=frozenset({0}))
    return summary + spread_table + rule


def _spread_bar(counts: Mapping[str, int], total: int) -> str:
    """One stacked bar: the attempt's calls split by part of the day."""
    x = 0.0
    parts = []
    for part in DAYPART_NAMES:
        width = 100 * counts[part] / total if total else 0.0
        if width:
            parts.append(
                f'<rect x="{x:.1f}" width="{width:.1f}" height="10" '
                f'fill="{DAYPART_COLOURS[part]}"/>'
            )
        x += width
    return (
        '<svg class="rate" width="100" height="10" viewBox="0 0 100 10" aria-hidden="true">'
        f'<rect width="100" height="10" fill="#e2e8f0"/>{"".join(parts)}</svg>'
    )


def when_intro(when: Mapping[str, Any]) -> str:
    """The line above the heatmaps: what was counted, and in whose time."""
    if not when["calls"]:
        return '<p class="empty">No call has ended yet.</p>'
    unknown = when["calls_without_timezone"]
    left_out = (
        f" {unknown:,} call(s) to numbers with no known timezone are in the tables below only."
        if unknown
        else ""
    )
    return (
        f'<p class="sub">{metric(f"{_KEY}.calls", when["calls"])} calls that ended: '
        f"{metric(f'{_KEY}.answered_pct', when['answered_pct'])}% answered, "
        f"{metric(f'{_KEY}.goal_pct', when['goal_pct'])}% reached the goal. Hours and "
        "weekdays are the recipient's own (the first timezone of the number), at the start "
        f"of the call.{left_out}</p>"
    )
