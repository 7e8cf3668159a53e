"""CORS for browser clients: one ASGI layer around the whole app (the HLS fast path included), fed by
``settings.cors``.

- **API, tus, presigned uploads** (everything but playback): only the origins in ``cors.allow_origins`` (empty:
  no CORS at all). A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) from an allowed
  origin is answered here, 204, before any guard: it carries no API key. Other requests get
  ``Access-Control-Allow-Origin`` and the headers a client must read exposed (``Location``, ``Upload-Offset``,
  ``Mediasvc-Asset-Id``, ``X-Request-ID``, ``Retry-After`` …).
- **Playback** (``/hls/…`` and the signed ``/media/serve|stream/…`` downloads) is open to any origin, whatever the
  setting: the token or signature in the URL is the credential (never a cookie), so a player on another origin
  (hls.js) can load playlists and segments and read a refusal.

A disallowed origin gets no CORS headers (the browser then refuses to hand the response to the page); a preflight
from it falls through to the app, which answers as it would any ``OPTIONS``.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from mediasvc.settings import CorsSettings

OPEN_PREFIXES = ("/hls/", "/media/serve/", "/media/stream/")
ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = ("Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Offset, Upload-Metadata, "
                 "Upload-Concat, Upload-Defer-Length, Upload-Checksum, X-HTTP-Method-Override, X-Request-ID, "
                 "Idempotency-Key, Range, If-None-Match, If-Match, If-Modified-Since")
EXPOSE_HEADERS = ("Location, Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata, Upload-Concat, "
                  "Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, "
                  "Mediasvc-Asset-Id, X-Request-ID, Retry-After, Content-Length, Content-Range, Accept-Ranges, "
                  "ETag, Last-Modified")


def cors_middleware(settings: CorsSettings, inner: ASGIApp) -> ASGIApp:
    """Wrap the app's outermost ASGI handler (``app.asgi_handler``) so every route, fast path included, answers
    CORS the same way."""
    allowed = {o.rstrip("/") for o in settings.allow_origins}
    any_origin = "*" in allowed
    preflight_headers = [(b"access-control-allow-methods", ALLOW_METHODS.encode()),
                         (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                         (b"access-control-max-age", str(settings.max_age_seconds).encode())]
    expose = [(b"access-control-expose-headers", EXPOSE_HEADERS.encode())]

    def grant(path: str, origin: str) -> list[tuple[bytes, bytes]] | None:
        """The Allow-Origin (and credentials) headers for this origin on this path, or None: no CORS."""
        if path.startswith(OPEN_PREFIXES):
            return [(b"access-control-allow-origin", b"*")]
        if any_origin:
            return [(b"access-control-allow-origin", b"*")]
        if origin in allowed:
            headers = [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]
            if settings.allow_credentials:
                headers.append((b"access-control-allow-credentials", b"true"))
            return headers
        return None

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        request_headers = dict(scope["headers"])
        origin = request_headers.get(b"origin", b"").decode("latin-1")
        # playback answers carry "*" even without an Origin: a cached segment then serves every player
        granted = grant(scope["path"], origin) if origin or scope["path"].startswith(OPEN_PREFIXES) else None
        if granted is None:
            await inner(scope, receive, send)
            return
        if origin and scope["method"] == "OPTIONS" and b"access-control-request-method" in request_headers:
            await send({"type": "http.response.start", "status": 204,
                        "headers": [*granted, *preflight_headers, (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", [])
                        if not k.lower().startswith(b"access-control-")]
                message = {**message, "headers": [*kept, *granted, *expose]}
            await send(message)

        await inner(scope, receive, send_with_cors)

    return handler
