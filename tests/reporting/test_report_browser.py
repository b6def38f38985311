"""report.html in a real browser: headless Chromium driven over the DevTools protocol.

The page must load from disk with no error, no network request, and show the numbers
of summary.json. Skipped when Chromium is not installed (CI installs Debian's package).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from manager_sample import LONG_REASON, manager_run

from campaign.reporting.files import CallRecord, RowResult, RunFacts, write_outputs

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1200,900",
]
METRICS_JS = (
    "JSON.stringify(Array.from(document.querySelectorAll('[data-metric]'))"
    ".map(e => [e.dataset.metric, e.textContent]))"
)
SVG_SIZES_JS = (
    "JSON.stringify(Array.from(document.querySelectorAll('svg:not(.rate)'))"
    ".map(s => s.getBoundingClientRect().height))"
)
# The heatmaps' squares as drawn: their rate text's rendered height (px) and its words.
HEAT_TEXT_JS = (
    "JSON.stringify(Array.from(document.querySelectorAll('svg.heatmap text.pct'))"
    ".map(t => [t.getBoundingClientRect().height, t.textContent]))"
)
HEAT_WIDTHS_JS = (
    "JSON.stringify(Array.from(document.querySelectorAll('svg.heatmap'))"
    ".map(s => [s.getBoundingClientRect().width, s.width.baseVal.value]))"
)
RATE_BARS_JS = (
    "JSON.stringify(Array.from(document.querySelectorAll('svg.rate'))"
    ".map(s => s.getBoundingClientRect().width))"
)
BAR_WIDTHS_JS = (
    "JSON.stringify(Array.from(document.querySelectorAll('table.bars tr')).map(r => "
    "[r.cells[0].textContent, r.querySelector('.fill').getBoundingClientRect().width,"
    " getComputedStyle(r.querySelector('.fill')).backgroundColor]))"
)
HEADINGS_JS = "JSON.stringify(Array.from(document.querySelectorAll('h2')).map(h => h.textContent))"
# Elements whose content is wider than their box (clipped or spilling over): none may be.
OVERFLOWING_JS = (
    "JSON.stringify(Array.from(document.querySelectorAll('.tile, .tile *, .card, td'))"
    ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.className + ': ' +"
    " e.textContent.slice(0, 60)))"
)
LONG_REASON_JS = (
    "JSON.stringify(Array.from(document.querySelectorAll('td.label'))"
    ".filter(td => td.textContent.includes('Grossbritannien'))"
    ".map(td => [td.innerText, td.getBoundingClientRect().height]))"
)


def big_run() -> tuple[list[RowResult], list[CallRecord], RunFacts]:
    """The manager's sample with a cost of five digits before the point (a long tile)."""
    rows, calls, facts = manager_run()
    calls[0] = dataclasses.replace(calls[0], cost=Decimal("98765.43"))
    return rows, calls, facts


class DevTools:
    """Just enough of the Chrome DevTools protocol: commands, and the events seen so far."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await self.ws.send_json({"id": message_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=30)
            if message.get("id") == message_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    async def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(await self.ws.receive_json(timeout=30))

    async def evaluate(self, expression: str) -> Any:
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"]["value"]


async def _devtools_port(profile: Path, browser: subprocess.Popen[bytes]) -> int:
    port_file = profile / "DevToolsActivePort"
    for _ in range(300):
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text().split()[0])
        if browser.poll() is not None:
            raise AssertionError(f"chromium exited with {browser.returncode}")
        await asyncio.sleep(0.1)
    raise AssertionError("chromium did not open its DevTools port within 30 s")


@pytest.fixture
async def devtools(tmp_path: Path) -> AsyncIterator[DevTools]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    profile = tmp_path / "profile"
    browser = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = await _devtools_port(profile, browser)
        async with aiohttp.ClientSession() as http:
            async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as reply:
                target = await reply.json()
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield DevTools(ws)
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()


async def test_report_opens_in_chromium_and_shows_the_summary(
    devtools: DevTools, tmp_path: Path
) -> None:
    paths = write_outputs(tmp_path / "out", *big_run())
    summary = json.loads(paths.summary_json.read_text(encoding="utf-8"))
    for domain in ("Page", "Runtime", "Log", "Network"):
        await devtools.send(f"{domain}.enable")
    await devtools.send("Page.navigate", url=paths.report_html.resolve().as_uri())
    await devtools.wait_for("Page.loadEventFired")

    problems = [
        e
        for e in devtools.events
        if e.get("method") in ("Runtime.exceptionThrown", "Network.loadingFailed")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert problems == []
    fetched = [
        e["params"]["request"]["url"]
        for e in devtools.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert all(url.startswith("file://") for url in fetched), fetched

    assert await devtools.evaluate("document.title") == (f"{summary['campaign']} — campaign report")
    shown = json.loads(await devtools.evaluate(METRICS_JS))
    keys = {key for key, _ in shown}
    assert {"rows_total", "funnel.valid", "funnel.called", "funnel.answered"} <= keys
    assert {"funnel.goal_achieved", "calls_placed", "cost.amount", "requests_spent"} <= keys
    assert {"callbacks.count", "retries_due.rows", "cost_estimate.amount"} <= keys
    assert {"by_country.US.rows", "by_country.GB.goal_achieved"} <= keys
    assert {
        "when_to_call.calls",
        "when_to_call.by_hour_weekday.sun.06.calls",  # 14:00 UTC is 06:00 in Los Angeles
        "when_to_call.by_country.GB.answered_pct",
        "when_to_call.by_number_type.mobile.goal_pct",
        "when_to_call.by_attempt.2.calls",
        "when_to_call.retry_dayparts.retries",
    } <= keys
    for key, text in shown:
        value: Any = summary
        for part in key.split("."):
            value = value[part]
        assert text == ("" if value is None else str(value)), key

    headings = json.loads(await devtools.evaluate(HEADINGS_JS))
    for section in (
        "Callbacks requested",
        "Why calls failed (share of failed calls)",
        "Attempts per callable row",
        "By country of the number",
        "Retries due",
        "When people answer (recipient-local hour and weekday)",
        "By part of the recipient's day",
        "By attempt",
        "By number type",
        "By country (per call)",
        "Per night of the campaign (recipient-local date)",
        "How retries were spread over the day",
        "Cost",
        "Runs",
    ):
        assert section in headings, section

    # The charts (calls over time, the two heatmaps) and every bar are drawn, in the
    # colour of what they mean; the small rate bars beside the "when to call" numbers too.
    heights = json.loads(await devtools.evaluate(SVG_SIZES_JS))
    assert len(heights) == 3 and all(height > 100 for height in heights)
    rate_bars = json.loads(await devtools.evaluate(RATE_BARS_JS))
    assert len(rate_bars) > 10 and all(width >= 40 for width in rate_bars)
    await _heatmaps_are_readable(devtools)
    bars = {label: (width, colour) for label, width, colour in
            json.loads(await devtools.evaluate(BAR_WIDTHS_JS))}  # fmt: skip
    assert all(width > 0 for width, _ in bars.values())
    assert bars["Goal achieved"][1] == "rgb(22, 163, 74)"  # green
    assert bars["Carrier rejected"][1] == "rgb(220, 38, 38)"  # red

    # A long reason is shown whole, wrapped over several lines, not cut to one.
    [(text, height)] = json.loads(await devtools.evaluate(LONG_REASON_JS))
    assert " ".join(text.split()) == "U" + LONG_REASON[1:] and height > 30

    # Nothing spills out of its card, wide or as narrow as a phone.
    assert json.loads(await devtools.evaluate(OVERFLOWING_JS)) == []
    shot = await devtools.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG")
    if os.environ.get("REPORT_SCREENSHOT"):  # for a human to look at the page
        Path(os.environ["REPORT_SCREENSHOT"]).write_bytes(png)
    await devtools.send(
        "Emulation.setDeviceMetricsOverride",
        width=400,
        height=900,
        deviceScaleFactor=1,
        mobile=True,
    )
    overflowing = json.loads(await devtools.evaluate(OVERFLOWING_JS))
    # On a phone a wide table may scroll inside its card; the page and the tiles never do.
    assert [item for item in overflowing if not item.startswith("card: ")] == []
    assert await devtools.evaluate("document.documentElement.scrollWidth <= innerWidth")
    # The heatmaps scroll sideways inside their card rather than shrink their numbers.
    await _heatmaps_are_readable(devtools)


async def _heatmaps_are_readable(devtools: DevTools) -> None:
    """Both heatmaps at their full size, every square's rate at least 11 px tall."""
    widths = json.loads(await devtools.evaluate(HEAT_WIDTHS_JS))
    assert len(widths) == 2
    assert all(abs(shown - drawn) < 1 for shown, drawn in widths), widths
    texts = json.loads(await devtools.evaluate(HEAT_TEXT_JS))
    assert texts and all(height >= 11 for height, _ in texts), texts
    assert all(text.endswith("%") for _, text in texts)
