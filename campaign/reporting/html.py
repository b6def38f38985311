"""report.html: one self-contained page (inline CSS and SVG, no script, no network) for a
manager: what the campaign achieved, who to call back, what failed and why, what it cost.

Every number on the page comes from the summary dict that is also written as summary.json;
elements showing one carry ``data-metric="<dotted key>"`` so a test can compare them. Every
value that could come from input data is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from campaign.reporting.charts import Bar, bar_list, calls_over_time_chart, legend
from campaign.reporting.compliance import compliance_card
from campaign.reporting.labels import TONE_COLOURS
from campaign.reporting.sections import (
    attempts_bars,
    callbacks_table,
    coded_bars,
    cost_table,
    country_table,
    e,
    how_long,
    metric,
    retries_table,
    runs_table,
    state_table,
    when,
)
from campaign.reporting.when import (
    NIGHT_NOTE,
    NUMBER_TYPE_NOTE,
    attempt_words,
    country_words,
    daypart_words,
    heatmap,
    night_words,
    number_type_words,
    rates_table,
    retry_spread,
    when_intro,
)

if TYPE_CHECKING:
    from campaign.reporting.files import CallRecord

_TONE_CSS = "".join(f".{kind}{{background:{colour}}}" for kind, colour in TONE_COLOURS.items())
_CSS = (
    """
:root{--fg:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1080px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px;overflow-wrap:anywhere}
h2{font-size:17px;margin:0 0 12px}
h3{font-size:14px;margin:14px 0 2px}
.sub{color:var(--muted);margin:4px 0}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-weight:600;font-size:13px}
.done-badge{background:#dcfce7;color:#166534}.open-badge{background:#fef3c7;color:#92400e}
.dry-badge{background:#e0e7ff;color:#3730a3}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(128px,1fr));gap:12px;
margin:20px 0 8px}
.tile,.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px;
min-width:0}
.tile .v{font-size:24px;font-weight:700;font-variant-numeric:tabular-nums;
overflow-wrap:anywhere}
.tile .v.long{font-size:19px}.tile .v.longer{font-size:15px}
.tile .k{font-size:13px;font-weight:600}
.tile .d{color:var(--muted);font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(420px,100%),1fr));gap:16px;
margin-bottom:16px}
.card{margin-bottom:16px;overflow-x:auto}
.grid .card{margin-bottom:0}
table{border-collapse:collapse;width:100%}
td,th{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;
overflow-wrap:break-word}
td.nowrap{white-space:nowrap}
th{font-size:13px;color:var(--muted);font-weight:600}
td.n,th.n,td.n span{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.bars{table-layout:fixed}
table.bars td{border-bottom:none;padding:3px 6px;vertical-align:middle}
table.bars td.label{width:45%}
table.bars td.n{width:4.6em}
table.bars td.share{color:var(--muted);width:3.8em}
.fill{display:block;height:16px;border-radius:3px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin:0 4px 0 10px;
vertical-align:-1px}
.legend .key{white-space:nowrap}
.legend{color:var(--muted);font-size:13px;margin:0 0 16px}
.code{color:var(--muted);font-size:12px}
.empty{color:var(--muted);font-style:italic}
svg{max-width:100%;height:auto;display:block}
svg text{font:12px system-ui,sans-serif;fill:var(--fg)}
svg .axis{fill:var(--muted)}
svg .count{font-size:11px}
.heat{overflow-x:auto;margin:8px 0 4px}
.heat svg{max-width:none}
svg .pct{font-size:12px;font-weight:700}
svg .of{font-size:10px;fill:#334155}
svg .pct.light,svg .of.light{fill:#fff}
span.nowrap{white-space:nowrap}
svg.rate{display:inline-block;vertical-align:middle;margin-right:6px;max-width:none}
footer{color:var(--muted);font-size:12px;margin-top:24px}
@media (max-width:600px){main{padding:12px}.card{padding:12px 10px}
td,th{padding:4px 4px;font-size:13px}}
"""
    + _TONE_CSS
)


def _tiles(summary: Mapping[str, Any]) -> str:
    funnel, cost = summary["funnel"], summary["cost"]
    called, placed = funnel["called"], summary["calls_placed"]
    per_person = f"{placed / called:.1f} calls per person" if called else "retries included"
    estimate = summary["cost_estimate"]
    cost_note = "sum of the calls' costs"
    if estimate is not None:
        cost_note = f"estimate {e(estimate['amount'])} (cost_estimate × calls)"
    currency = metric("cost.currency", cost["currency"])
    tiles = [  # (label, summary.json key, value, what it counts)
        ("Rows in the input", "rows_total", summary["rows_total"], "lines of results.csv"),
        ("Valid numbers", "funnel.valid", funnel["valid"], "not rejected"),
        ("People called", "funnel.called", called, "rows called at least once"),
        ("Calls placed", "calls_placed", placed, per_person),
        ("Answered", "funnel.answered", funnel["answered"], "people whose last call was answered"),
        ("Goal achieved", "funnel.goal_achieved", funnel["goal_achieved"], "people"),
        (f"Cost ({currency})", "cost.amount", cost["amount"], cost_note),
    ]
    cells = "".join(
        f'<div class="tile"><div class="k">{name}</div>'
        f'<div class="v{_length_class(str(value))}">{metric(key, value)}</div>'
        f'<div class="d">{counts}</div></div>'
        for name, key, value, counts in tiles
    )
    return f'<section class="tiles">{cells}</section>'


def _length_class(text: str) -> str:
    """A smaller font for long values, so an amount such as 98765.43 stays in its tile."""
    return " longer" if len(text) > 9 else " long" if len(text) > 6 else ""


def _header(summary: Mapping[str, Any]) -> str:
    if summary["finished"]:
        status = '<span class="badge done-badge">Finished</span>'
    else:
        due, why = summary["next_due"], summary["next_due_reason"]
        more = f" — next work falls due {when(due)}" if due else ""
        more += f" ({e(why)})" if why else ""
        status = f'<span class="badge open-badge">In progress</span>{more}'
    if summary["dry_run"]:
        status += ' <span class="badge dry-badge">Dry run: nothing was sent</span>'
    span, runs = summary["span"], summary["runs"]
    if span["first_call_at"]:
        calls = (
            f"Calls from {when(span['first_call_at'])} to {when(span['last_call_at'])} "
            f"({how_long(span['first_call_at'], span['last_call_at'])})"
        )
    else:
        calls = "No call placed yet"
    if runs:
        last = runs[-1]
        run_text = (
            f"{len(runs):,} run{'s' if len(runs) != 1 else ''}; the last "
            f"{when(last['started_at'])} → {when(last['ended_at'])}"
        )
    else:
        run_text = f"this run {when(summary['started_at'])} → {when(summary['ended_at'])}"
    return (
        f"<header><h1>{e(summary['campaign'])}</h1>"
        f'<p class="sub">{status}</p>'
        f'<p class="sub">{calls} · {run_text}</p>'
        f'<p class="sub">Mode {e(summary["mode"])} · calling hours: '
        f"{e(summary['calling_hours'])}</p></header>"
    )


def _card(title: str, content: str) -> str:
    return f'<section class="card"><h2>{e(title)}</h2>{content}</section>'


def _funnel(summary: Mapping[str, Any]) -> str:
    funnel = summary["funnel"]
    steps: list[Bar] = [
        ("Rows in the input", funnel["rows"], "step"),
        ("Valid numbers", funnel["valid"], "step"),
        ("Callable (not suppressed or duplicate)", funnel["callable"], "step"),
        ("Called at least once", funnel["called"], "step"),
        ("Answered", funnel["answered"], "step"),
        ("Goal achieved", funnel["goal_achieved"], "good"),
    ]
    return bar_list(steps, total=funnel["rows"], title="funnel")


def _not_called(summary: Mapping[str, Any]) -> str:
    bars: list[Bar] = [
        (reason[:1].upper() + reason[1:], count, "neutral")
        for reason, count in summary["rejects_by_reason"].items()
    ]
    return bar_list(bars, total=summary["rows_total"], title="rows not called")


def _extensions(summary: Mapping[str, Any]) -> str:
    count = summary["rows_with_extension"]
    if not count:
        return ""
    return (
        f'<p class="sub">{metric("rows_with_extension", count)} row(s) have an extension after '
        "the number (column extension of results.csv): a call reaches the main number only.</p>"
    )


def _when_to_call(summary: Mapping[str, Any]) -> str:
    """The "when to call" cards: heatmaps, then a rate table per bucket, then retries."""
    when = summary["when_to_call"]
    heatmaps = (
        when_intro(when)
        + "<h3>Share answered</h3>"
        + heatmap(when, "answered")
        + "<h3>Share that reached the goal</h3>"
        + heatmap(when, "goal")
    )
    dayparts = rates_table(when, "by_daypart", "Part of the day", daypart_words, note=NIGHT_NOTE)
    kinds = rates_table(
        when, "by_number_type", "Number type", number_type_words, note=NUMBER_TYPE_NOTE
    )
    return (
        _card("When people answer (recipient-local hour and weekday)", heatmaps)
        + '<div class="grid">'
        + _card("By part of the recipient's day", dayparts)
        + _card("By attempt", rates_table(when, "by_attempt", "Attempt", attempt_words))
        + _card("By number type", kinds)
        + _card("By country (per call)", rates_table(when, "by_country", "Country", country_words))
        + "</div>"
        + _card(
            "Per night of the campaign (recipient-local date)",
            rates_table(when, "by_night", "Night", night_words),
        )
        + _card("How retries were spread over the day", retry_spread(when))
    )


def render_report(summary: Mapping[str, Any], calls: Sequence[CallRecord]) -> str:
    """The whole report.html page for ``summary`` (as in summary.json) and the calls made."""
    funnel = summary["funnel"]
    outcomes = bar_list(
        coded_bars(summary["by_outcome"]), total=funnel["answered"], title="outcomes"
    )
    statuses = bar_list(
        coded_bars(summary["by_last_status"]), total=funnel["called"], title="last status"
    )
    failures = bar_list(
        coded_bars(summary["failure_reasons"]),
        total=summary["calls_by_status"].get("failed", 0),
        title="why calls failed",
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{e(summary['campaign'])} — campaign report</title><style>{_CSS}</style></head>"
        f"<body><main>{_header(summary)}{_tiles(summary)}{legend()}"
        + _card("Funnel (share of the rows in the input)", _funnel(summary))
        + '<div class="grid">'
        + _card("Outcomes of answered calls (share of answered)", outcomes)
        + _card("How the last attempt ended (share of people called)", statuses)
        + "</div>"
        + _card("Callbacks requested", callbacks_table(summary))
        + _card("Calls over time", calls_over_time_chart(calls))
        + '<div class="grid">'
        + _card("Why calls failed (share of failed calls)", failures)
        + _card("Attempts per callable row", attempts_bars(summary))
        + "</div>"
        + _card("By country of the number", country_table(summary))
        + _card("Retries due", retries_table(summary))
        + _when_to_call(summary)
        + _card("Rows not called, by reason", _not_called(summary) + _extensions(summary))
        + compliance_card(summary)
        + '<div class="grid">'
        + _card("Rows by state", state_table(summary))
        + _card("Cost", cost_table(summary))
        + "</div>"
        + _card("Runs", runs_table(summary))
        + f"<footer>Input: {e(summary['input_path'])} · the same numbers are in summary.json "
        "and one line per input row in results.csv. Times are UTC.</footer>"
        "</main></body></html>\n"
    )
