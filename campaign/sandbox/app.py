"""The aiohttp application: one dispatcher that applies the API's order of checks to every request.

authentication (401) → request limits (429) → scope (403) → Idempotency-Key presence and
format (400) → idempotency lookup (replay / 409) → size (413) → validation (400) →
semantics (422) → outbound limit (429) → execute. Unknown routes answer 404 after the
request limits. Faults (faults.py) wrap this pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

from campaign.sandbox.clock import SandboxClock, SandboxSystemClock, rfc3339
from campaign.sandbox.config import SandboxConfig
from campaign.sandbox.context import Ctx, Reply
from campaign.sandbox.delivery import WebhookSender
from campaign.sandbox.faults import FaultDecision, FaultInjector
from campaign.sandbox.idempotency import canonical_json, request_fingerprint
from campaign.sandbox.persist import load_state, save_state
from campaign.sandbox.problems import ApiProblem, new_id
from campaign.sandbox.routes import Route, find_route
from campaign.sandbox.uploads import parse_multipart, parts_fingerprint
from campaign.sandbox.validate import API_VERSION, IDEMPOTENCY_KEY
from campaign.sandbox.views import batch_view, call_view, ledger_view
from campaign.sandbox.windows import SlidingWindow

log = logging.getLogger("campaign.sandbox")
MAX_BODY = 32 * 1024 * 1024
PROXY_503_HTML = (
    "<html><head><title>503 Service Temporarily Unavailable</title></head>"
    "<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
)
TICK_S = 0.25


class Sandbox:
    """The emulated platform behind the HTTP server."""

    def __init__(self, config: SandboxConfig, clock: SandboxClock) -> None:
        config.validate()
        self.config = config
        self.clock = clock
        self.world, self.memory = load_state(config, config.state_file, clock.now())
        self.faults = FaultInjector(config.faults, config.fault_seed)
        self.sender = WebhookSender(clock, config.time_scale)
        self.world.on_event = self._on_event

    # ----- the pipeline ---------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request."""
        request_id = new_id("req")
        headers = {"X-Request-Id": request_id}
        version = request.headers.get("X-AVP-API-Version")
        if version is not None and API_VERSION.fullmatch(version):
            headers["X-AVP-API-Version"] = version  # accepted and echoed; changes nothing
        if request.path.startswith("/_sandbox/"):
            return self._admin(request, headers)
        decision = self.faults.decide(request.method, request.path)
        if decision.action is not None:
            log.info("injecting %s into %s %s", decision.action, request.method, request.path)
        if decision.action == "proxy_503":
            return web.Response(status=503, text=PROXY_503_HTML, content_type="text/html")
        key = self._api_key(request)
        if key is None:
            problem = ApiProblem("unauthenticated", "missing or unknown API key")
            return self._json(problem.status, problem.body(request_id), headers)
        now = self.clock.now()
        self.world.advance(now)
        minute, hour = self.world.request_windows(key)
        full = (not minute.has_room(now), not hour.has_room(now))
        self.world.count_request(key, now)
        try:
            reply = await self._admitted(request, key, request_id, headers, decision, full)
        finally:
            # GETs change only what time derives again on load (and request windows), so
            # only state-changing requests pay for a save; close() saves everything.
            if request.method != "GET":
                self._save()
        if decision.action == "reset_after" and request.transport is not None:
            request.transport.abort()
        return reply

    async def _admitted(
        self,
        request: web.Request,
        key: str,
        request_id: str,
        headers: dict[str, str],
        decision: FaultDecision,
        full: tuple[bool, bool],
    ) -> web.Response:
        project_id = self.config.keys[key].project_id
        minute, hour = self.world.request_windows(key)
        now = self.clock.now()
        try:
            refused = self._refused(minute, hour, full, now)
            if refused is not None:
                raise refused
            if decision.action == "error_before":
                raise ApiProblem("internal", "injected fault: error before execution")
            found = find_route(request.method, request.path)
            if found is None:
                raise ApiProblem("not_found", f"no route {request.method} {request.path}")
            route, params = found
            if route.scope not in self.config.keys[key].scopes:
                raise ApiProblem("permission_denied", f"the API key lacks scope {route.scope}")
            idempotency_key = self._idempotency_key(request, route)
            self._check_version_header(request, route)
        except ApiProblem as problem:
            return self._problem(problem, request_id, headers, minute, now)
        target = (route, params, project_id, idempotency_key)
        return await self._execute(request, target, request_id, headers, decision, minute)

    async def _execute(
        self,
        request: web.Request,
        target: tuple[Route, dict[str, str], str, str | None],
        request_id: str,
        headers: dict[str, str],
        decision: FaultDecision,
        minute: SlidingWindow,
    ) -> web.Response:
        route, params, project_id, idempotency_key = target
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            problem = ApiProblem("payload_too_large", "the request body is above 32 MiB")
            return self._problem(problem, request_id, headers, minute, self.clock.now())
        ctx = Ctx(
            project_id=project_id,
            method=request.method,
            path=request.path,
            params=params,
            query=request.query,
            body=body,
            content_type=request.headers.get("Content-Type", ""),
            now=self.clock.now(),
            world=self.world,
            config=self.config,
            idempotency_key=idempotency_key,
        )
        body_identity = self._body_identity(ctx, route)
        fingerprint = request_fingerprint(ctx.method, ctx.path, body_identity)
        if idempotency_key is not None:
            try:
                remembered = self.memory.lookup(project_id, idempotency_key, fingerprint, ctx.now)
            except ApiProblem as problem:
                return self._problem(problem, request_id, headers, minute, ctx.now)
            if remembered is not None and remembered.status is not None:
                replay_headers = {**headers, "Idempotent-Replayed": "true"}
                return self._raw(remembered.status, remembered.body, replay_headers, minute)
            self.memory.begin(project_id, idempotency_key, fingerprint, ctx.now)
        try:
            if decision.delay_s > 0:
                await asyncio.sleep(decision.delay_s)
                ctx.now = self.clock.now()
                self.world.advance(ctx.now)
            reply = self._run(route, ctx, request_id)
        except BaseException:  # cancelled mid-delay: nothing executed, so forget the key
            if idempotency_key is not None:
                self.memory.finish(project_id, idempotency_key, 500, "")
            raise
        text = "" if reply.body is None else json.dumps(reply.body)
        if idempotency_key is not None:
            self.memory.finish(project_id, idempotency_key, reply.status, text)
        if reply.status == 429:
            self.world.stats["rate_limited"] += 1
        if decision.action == "error_after":
            fault = ApiProblem("internal", "injected fault: error after execution")
            return self._problem(fault, request_id, headers, minute, ctx.now)
        return self._raw(reply.status, text, {**headers, **reply.extra_headers}, minute)

    def _run(self, route: Route, ctx: Ctx, request_id: str) -> Reply:
        try:
            allowed = route.query_parameters
            unknown = [name for name in ctx.query if allowed is not None and name not in allowed]
            if unknown:
                raise ApiProblem(
                    "invalid_argument",
                    f"unknown query parameter {unknown[0]!r}",
                    field=unknown[0] or None,
                )
            return route.handler(ctx)
        except ApiProblem as problem:
            extra = {}
            if problem.retry_after is not None:
                extra["Retry-After"] = str(problem.retry_after)
            return Reply(problem.status, problem.body(request_id), extra)
        except Exception:  # a sandbox bug must still answer in the contract's shape
            log.exception("sandbox handler failed")
            body = ApiProblem("internal", "unexpected sandbox error").body(request_id)
            return Reply(500, body)

    # ----- the checks -----------------------------------------------------------------

    def _api_key(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token not in self.config.keys:  # scheme: RFC 9110
            return None
        return token

    def _refused(
        self, minute: SlidingWindow, hour: SlidingWindow, full: tuple[bool, bool], now: float
    ) -> ApiProblem | None:
        # The refusal itself was counted, so Retry-After is measured after counting it.
        minute_full, hour_full = full
        if not (minute_full or hour_full):
            return None
        waits = [
            w.retry_after(now) for w, full in ((minute, minute_full), (hour, hour_full)) if full
        ]
        name = "requests_per_minute" if minute_full else "requests_per_hour"
        window = minute if minute_full else hour
        return ApiProblem(
            "rate_limited",
            f"{name}: at most {window.limit} requests per {window.window_s:g} s",
            limit=name,
            retry_after=max(waits),
        )

    def _idempotency_key(self, request: web.Request, route: Route) -> str | None:
        value = request.headers.get("Idempotency-Key")
        if value is None:
            if route.key_required:
                raise ApiProblem(
                    "invalid_argument",
                    "the Idempotency-Key header is required on this endpoint",
                    field="Idempotency-Key",
                )
            return None
        if route.method == "GET":
            return None
        if IDEMPOTENCY_KEY.fullmatch(value) is None:
            raise ApiProblem(
                "invalid_argument",
                "Idempotency-Key must be 1-255 printable ASCII characters",
                field="Idempotency-Key",
            )
        return value

    def _check_version_header(self, request: web.Request, route: Route) -> None:
        # Checked with the other request headers, before the idempotency lookup, so a replay
        # cannot hide it. Where the spec documents no 400 (plain GETs) there is no status
        # code for it, so the header is ignored there (and not echoed).
        version = request.headers.get("X-AVP-API-Version")
        if version is not None and not API_VERSION.fullmatch(version) and route.documents_400:
            raise ApiProblem(
                "invalid_argument",
                "X-AVP-API-Version must look like v1.preview-YYYY-MM-DD",
                field="X-AVP-API-Version",
            )

    def _body_identity(self, ctx: Ctx, route: Route) -> str:
        """The body as idempotency compares it: canonical JSON, or names and bytes of the parts."""
        if route.multipart:
            try:
                ctx.parts = parse_multipart(ctx.body, ctx.content_type)
            except ApiProblem as problem:
                ctx.parts_error = problem
                return "raw:" + ctx.body.hex()
            return "parts:" + parts_fingerprint(ctx.parts)
        try:
            return "json:" + canonical_json(json.loads(ctx.body.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return "raw:" + ctx.body.hex()

    # ----- responses ------------------------------------------------------------------

    def _problem(
        self,
        problem: ApiProblem,
        request_id: str,
        headers: dict[str, str],
        minute: SlidingWindow,
        now: float,
    ) -> web.Response:
        extra = dict(headers)
        if problem.retry_after is not None:
            extra["Retry-After"] = str(problem.retry_after)
        if problem.status == 429:
            self.world.stats["rate_limited"] += 1
        return self._raw(problem.status, json.dumps(problem.body(request_id)), extra, minute)

    def _raw(
        self, status: int, text: str, headers: dict[str, str], minute: SlidingWindow
    ) -> web.Response:
        now = self.clock.now()
        limit_headers = {
            "X-RateLimit-Limit": str(minute.limit),
            "X-RateLimit-Remaining": str(max(0, minute.limit - minute.count(now))),
            "X-RateLimit-Reset": rfc3339(minute.reset_at(now)),
        }
        all_headers = {**headers, **limit_headers}
        if status == 204:
            return web.Response(status=204, headers=all_headers)
        return web.Response(
            status=status, text=text, content_type="application/json", headers=all_headers
        )

    def _json(self, status: int, body: Any, headers: dict[str, str]) -> web.Response:
        return web.Response(
            status=status, text=json.dumps(body), content_type="application/json", headers=headers
        )

    # ----- side channels --------------------------------------------------------------

    def _admin(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        if not self.config.ledger:
            body = ApiProblem("not_found", "the ledger is off").body(headers["X-Request-Id"])
            return self._json(404, body, headers)
        self.world.advance(self.clock.now())
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and parts == ["_sandbox", "ledger"]:
            return self._json(200, self.ledger(), headers)
        if request.method == "POST" and len(parts) == 4 and parts[1] == "batches":
            batch = self.world.batches.get(parts[2])
            if batch is not None and parts[3] in ("cancel", "fail"):
                status = "canceled" if parts[3] == "cancel" else "failed"
                if batch.status in ("validating", "running"):
                    self.world.end_batch(batch, status, self.clock.now())
                    self._save()
                return self._json(200, batch_view(self.world, batch), headers)
        body = ApiProblem("not_found", "no such sandbox route").body(headers["X-Request-Id"])
        return self._json(404, body, headers)

    def ledger(self) -> dict[str, Any]:
        """The inspection view of GET /_sandbox/ledger."""
        self.world.advance(self.clock.now())
        return ledger_view(self.world)

    def _on_event(self, project_id: str, event_type: str, object_id: str) -> None:
        if event_type == "batch.completed":
            data = batch_view(self.world, self.world.batches[object_id])
        else:
            data = call_view(self.world.calls[object_id])
        for webhook in self.world.webhooks.values():
            if webhook.project_id == project_id and webhook.active and event_type in webhook.events:
                self.sender.enqueue(webhook.url, webhook.secret, event_type, data)

    def _save(self) -> None:
        if self.config.state_file is not None:
            save_state(self.config.state_file, self.world, self.memory)

    async def tick(self) -> None:
        """Advance the world in real time so webhooks fire without being polled."""
        while True:
            await asyncio.sleep(TICK_S)
            self.world.advance(self.clock.now())


SANDBOX_KEY = web.AppKey("sandbox", Sandbox)


def create_app(
    config: SandboxConfig | None = None, clock: SandboxClock | None = None
) -> web.Application:
    """An aiohttp application serving the sandbox API under /v1 (ledger under /_sandbox)."""
    sandbox = Sandbox(config or SandboxConfig(), clock or SandboxSystemClock())
    app = web.Application(client_max_size=MAX_BODY)
    app[SANDBOX_KEY] = sandbox
    # [\s\S]: even a path with an encoded newline reaches the dispatcher (and gets a JSON 404)
    app.router.add_route("*", r"/{tail:[\s\S]*}", sandbox.handle)

    async def lifecycle(app: web.Application) -> Any:
        await sandbox.sender.start()
        ticker = asyncio.create_task(sandbox.tick())
        yield
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await sandbox.sender.close()
        sandbox._save()

    app.cleanup_ctx.append(lifecycle)
    return app
