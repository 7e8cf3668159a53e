"""ASGI middleware: request id, an OpenTelemetry span per request, and the request counter."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from mediasvc.logs import request_id_var
from mediasvc.telemetry import tracer

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def observability_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        method = scope["method"]
        with tracer().start_as_current_span(
            f"{method} {scope['path']}",
            attributes={"http.request.method": method, "url.path": scope["path"], "mediasvc.request_id": request_id},
        ) as span:
            try:
                await app(scope, receive, send_with_id)
            finally:
                route = _route_of(scope)
                span.set_attribute("http.response.status_code", status)
                span.set_attribute("http.route", route)
                span.update_name(f"{method} {route}")
                services: Any = scope["app"].state.get("services") if "app" in scope else None
                if services is not None:
                    services.metrics.http_requests.labels(method=method, route=route, status=str(status)).inc()
                request_id_var.reset(token)

    return middleware


def _route_of(scope: Scope) -> str:
    # the route's template (/api/v1/assets/{asset_id:uuid}), never the raw path: labels must stay few
    return scope.get("path_template") or "unmatched"
