"""``OPTIONS`` answers with every method its path serves.

Litestar 2 builds a route one handler at a time: a controller's ``GET /x`` and ``DELETE /x`` become a route with
``DELETE`` (and an automatic ``OPTIONS`` handler that lists the methods of *that* route), then a new route with
both, which keeps the first ``OPTIONS`` handler. So ``OPTIONS /api/v1/assets/{id}`` said ``Allow: DELETE,
OPTIONS`` (litestar-org/litestar#4169, fixed in Litestar 3 only). This middleware sets ``Allow`` on those
answers from the final route's methods. (A 405 is built from the routing trie and was always right.)
"""

from __future__ import annotations

from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send


def _allowed(app: object, path_template: str) -> str | None:
    """The methods of the route at ``path_template`` (looked up per OPTIONS request: they are rare)."""
    for route in getattr(app, "routes", []):
        if isinstance(route, HTTPRoute) and route.path_format == path_template:
            return ", ".join(sorted(route.methods))
    return None


def allow_header_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await app(scope, receive, send)
            return
        allow = _allowed(scope["app"], scope.get("path_template", ""))

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and allow:
                headers = list(message.get("headers", []))
                if any(name.lower() == b"allow" for name, _ in headers):
                    headers = [(n, v) for n, v in headers if n.lower() != b"allow"] + [(b"allow", allow.encode())]
                    message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_allow)

    return middleware
