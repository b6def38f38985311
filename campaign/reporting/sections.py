"""The report's tables, each from its summary.json key: countries, callbacks, retries, runs,
cost. Every value that could come from input data or the API is HTML-escaped here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from html import escape
from typing import Any

from campaign.phones.countries import country_name
from campaign.reporting.charts import Bar, bar_list
from campaign.reporting.labels import label, run_result, tone

_RUNS_SHOWN = 12
_RETRY_HOURS_SHOWN = 12
_TIME_WORDS = ("time", "date", "when", "day", "hour", "callback")


def e(value: object) -> str:
    """HTML-escaped text of a value."""
    return escape(str(value), quote=True)


def metric(key: str, value: object) -> str:
    """A span holding one summary.json value, findable by a test."""
    shown = "" if value is None else value
    return f'<span data-metric="{e(key)}">{e(shown)}</span>'


def when(iso: str | None) -> str:
    """'2026-11-29T14:03:12Z' → '29 Nov 2026 14:03 UTC' (escaped); '—' for none."""
    if not iso:
        return "—"
    moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    return e(moment.strftime("%d %b %Y %H:%M UTC").lstrip("0"))


def how_long(start: str | None, end: str | None) -> str:
    """The time between two RFC 3339 instants in words ('2 days 3 h', '14 min', '8 s')."""
    if not start or not end:
        return "—"
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    seconds = int((datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds())
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days > 1 else ''} {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{secs} s"


def coded_bars(counts: Mapping[str, int]) -> list[Bar]:
    """Bars for counts keyed by API codes: words for labels, colours by meaning."""
    return [(label(code), count, tone(code)) for code, count in counts.items()]


def table(
    head: list[str],
    rows: list[list[str]],
    *,
    numeric: frozenset[int] = frozenset(),
    nowrap: frozenset[int] = frozenset(),
) -> str:
    """A plain table; cells are HTML already (escape before). Columns by index: ``numeric``
    right-aligned, ``nowrap`` kept on one line (keys, numbers, times)."""

    def cells(tag: str, values: list[str]) -> str:
        return "".join(
            f"<{tag}{_cell_class(i in numeric, i in nowrap)}>{value}</{tag}>"
            for i, value in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><thead><tr>{cells('th', head)}</tr></thead><tbody>{body}</tbody></table>"


def _cell_class(numeric: bool, nowrap: bool) -> str:
    names = ["n"] * numeric + ["nowrap"] * nowrap
    return f' class="{" ".join(names)}"' if names else ""


def country_table(summary: Mapping[str, Any]) -> str:
    """Rows per country of their number."""
    countries = summary["by_country"]
    if not countries:
        return '<p class="empty">No rows.</p>'
    rows = []
    for code, counts in countries.items():
        name = "Unknown (no valid number)" if code == "unknown" else f"{country_name(code)}"
        shown_code = "" if code == "unknown" else f' <span class="code">{e(code)}</span>'
        called = counts["called"]
        rate = f"{100 * counts['goal_achieved'] / called:.0f}%" if called else "—"
        rows.append(
            [
                e(name) + shown_code,
                *(
                    metric(f"by_country.{code}.{key}", counts[key])
                    for key in ("rows", "callable", "called", "answered", "goal_achieved")
                ),
                rate,
            ]
        )
    head = ["Country", "Rows", "Callable", "Called", "Answered", "Goal achieved", "Goal rate"]
    note = '<p class="sub">Goal rate: goals achieved per person called.</p>'
    return table(head, rows, numeric=frozenset({1, 2, 3, 4, 5, 6})) + note


def callbacks_table(summary: Mapping[str, Any]) -> str:
    """Who asked to be called back, when, and what the call collected."""
    found = summary["callbacks"]
    if not found["count"]:
        return '<p class="empty">Nobody has asked for a callback.</p>'
    rows = []
    for entry in found["rows"]:
        person = "; ".join(f"{label(k)}: {v}" for k, v in entry["variables"].items() if v)
        slots = sorted(
            entry["slot_values"].items(),
            key=lambda item: not any(word in item[0].lower() for word in _TIME_WORDS),
        )
        asked = "; ".join(f"{label(k)}: {v}" for k, v in slots) or "—"
        rows.append(
            [
                str(entry["line"]),
                e(entry["key"]),
                e(person) or "—",
                e(entry["e164"] or "—"),
                when(entry["asked_at"]),
                e(asked),
            ]
        )
    more = ""
    if found["count"] > len(found["rows"]):
        more = (
            f'<p class="sub">The first {len(found["rows"]):,} of {found["count"]:,}; all are in '
            "results.csv (outcome callback_requested).</p>"
        )
    head = ["Line", "Key", "Who", "Number", "Asked on", "What they said (session)"]
    people = "person" if found["count"] == 1 else "people"
    intro = (
        f'<p class="sub">{metric("callbacks.count", found["count"])} {people} asked to be '
        "called back; this campaign does not call them again.</p>"
    )
    return intro + table(head, rows, numeric=frozenset({0}), nowrap=frozenset({1, 3, 4})) + more


def retries_table(summary: Mapping[str, Any]) -> str:
    """When the rows waiting for a retry fall due."""
    due = summary["retries_due"]
    if not due["rows"]:
        return '<p class="empty">No row waits for a retry.</p>'
    hours = list(due["by_hour"].items())
    rows = [[when(hour), f"{count:,}"] for hour, count in hours[:_RETRY_HOURS_SHOWN]]
    later = sum(count for _, count in hours[_RETRY_HOURS_SHOWN:])
    if later:
        rows.append(["later", f"{later:,}"])
    intro = (
        f'<p class="sub">{metric("retries_due.rows", due["rows"])} row(s) wait for a retry; '
        f"the first falls due {when(due['next'])}. Run the campaign again then.</p>"
    )
    return intro + table(["Due from (hour, UTC)", "Rows"], rows, numeric=frozenset({1}))


def runs_table(summary: Mapping[str, Any]) -> str:
    """The campaign's runs, newest first."""
    runs = summary["runs"]
    if not runs:
        return '<p class="empty">No run recorded.</p>'
    shown = list(reversed(runs))[:_RUNS_SHOWN]
    rows = [
        [
            when(run["started_at"]),
            when(run["ended_at"]),
            how_long(run["started_at"], run["ended_at"]),
            f"{run['calls_placed']:,}",
            e(run_result(run["exit_code"], this_run=run["this_run"])),
        ]
        for run in shown
    ]
    more = ""
    if len(runs) > len(shown):
        more = f'<p class="sub">The last {len(shown)} of {len(runs):,} runs.</p>'
    head = ["Started", "Ended", "Took", "Calls placed", "Result"]
    return table(head, rows, numeric=frozenset({3}), nowrap=frozenset({0, 1})) + more


def cost_table(summary: Mapping[str, Any]) -> str:
    """What the calls cost, beside what the campaign file estimated."""
    cost = summary["cost"]
    currency = e(cost["currency"] or "")
    amount = float(cost["amount"])
    called = summary["calls_placed"]
    goals = summary["funnel"]["goal_achieved"]
    per_call = f"{amount / called:.2f} {currency}" if called else "—"
    per_goal = f"{amount / goals:.2f} {currency}" if goals else "—"
    rows = [
        (
            "Actual cost (from the calls' sessions)",
            f"{metric('cost.amount', cost['amount'])} {currency}",
        )
    ]
    estimate = summary["cost_estimate"]
    if estimate is not None:
        rows += [
            (
                f"Estimate: {e(estimate['per_call'])} per call × {estimate['calls']:,} calls",
                f"{metric('cost_estimate.amount', estimate['amount'])} {currency}",
            ),
            ("Actual minus estimate", f"{e(estimate['difference'])} {currency}"),
        ]
    else:
        rows.append(
            ("Estimate", '<span class="empty">no cost_estimate in the campaign file</span>')
        )
    rows += [
        ("Calls with a known cost", metric("cost.calls_costed", cost["calls_costed"])),
        ("Average per call placed", per_call),
        ("Cost per goal achieved", per_goal),
        ("Talk time (minutes)", f"{summary['talk_time_s'] / 60:.1f}"),
        ("API requests spent", metric("requests_spent", summary["requests_spent"])),
    ]
    body = "".join(f'<tr><td>{k}</td><td class="n">{v}</td></tr>' for k, v in rows)
    note = ""
    if called and not cost["calls_costed"]:
        note = '<p class="empty">No call has a cost reported by the API yet.</p>'
    return f"<table>{body}</table>{note}"


def state_table(summary: Mapping[str, Any]) -> str:
    """Rows per results.csv state."""

    def name(state: str) -> str:
        words = label(state)
        same = words.lower() == state.replace("_", " ")
        return e(words) + ("" if same else f' <span class="code">{e(state)}</span>')

    body = "".join(
        f'<tr><td><span class="swatch {tone(state)}"></span>{name(state)}</td>'
        f'<td class="n">{metric("by_state." + state, count)}</td></tr>'
        for state, count in summary["by_state"].items()
    )
    return (
        f'<table><tr><th>State (as in results.csv)</th><th class="n">Rows</th></tr>{body}</table>'
    )


def attempts_bars(summary: Mapping[str, Any]) -> str:
    """Rows that could be called, per number of attempts."""
    per_row = summary["attempts_per_row"]
    bars: list[Bar] = [
        (f"{n} attempt{'s' if n != '1' else ''}", count, "neutral" if n != "0" else "follow_up")
        for n, count in per_row.items()
    ]
    return bar_list(bars, total=sum(per_row.values()), title="attempts per row")
