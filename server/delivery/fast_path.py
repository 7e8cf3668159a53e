"""The HLS fast path: a token-checked segment or playlist answered before Litestar's routing, with the ASGI
``http.response.pathsend`` extension (Granian sends the file itself, from Rust).

It takes only the common case, and only when every answer is already known without I/O: a GET without Range or
conditional headers, a valid token, the asset in the lookup cache, the local backend, ``proxy`` delivery, and a
file that exists. Anything else — a refusal included — falls through to the ``/hls/…`` route, which gives the same
bytes and headers (and the error envelope) the slow way. ``tests/test_playback_browser.py`` plays through it.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any
from uuid import UUID

from litestar.types import ASGIApp, Receive, Scope, Send

from mediasvc.delivery.hls import SAFE_PATH, SEGMENT_CACHE, segment_delivery
from mediasvc.delivery.lookup import cached_target, playlist_cache_control
from mediasvc.delivery.tokens import verify_token
from mediasvc.object_responses import STORED_BYTES_HEADERS, content_type_for

PATHSEND = "http.response.pathsend"
_SKIP_HEADERS = (b"range", b"if-none-match", b"if-modified-since", b"if-range", b"x-forwarded-for")
_STORED = [(k.lower().encode(), v.encode()) for k, v in STORED_BYTES_HEADERS.items()]  # as the slow path sends
CONTENT_TYPES = {"ts": b"video/mp2t", "m3u8": b"application/vnd.apple.mpegurl", "m4s": b"video/iso.segment",
                 "vtt": b"text/vtt", "mp4": b"video/mp4", "aac": b"audio/aac"}
ROUTE_LABEL = "/hls/{token}/{asset_id}/{path} (fast)"


def hls_fast_path(app: Any, inner: ASGIApp) -> ASGIApp:
    """Wrap Litestar's ASGI handler (``app.asgi_handler``) so qualifying HLS requests skip it."""
    known = _Known()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"].startswith("/hls/") and scope["method"] == "GET"
                and PATHSEND in (scope.get("extensions") or {})):
            answer = _answer(app.state.services, known, scope)
            if answer is not None:
                path, headers = answer
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": PATHSEND, "path": path})
                app.state.services.metrics.http_requests.labels(method="GET", route=ROUTE_LABEL,
                                                                status="200").inc()
                return
        await inner(scope, receive, send)

    return handler


class _Known:
    """Per app: its segment delivery mode and the checked local folder of each asset's HLS files (``local_path``
    resolves symlinks, too slow to do per request)."""

    def __init__(self) -> None:
        self.mode: str | None = None
        self.folders: dict[str, str] = {}
        self.tokens: dict[tuple[str, str, str | None], tuple[int, UUID]] = {}  # verified: expiry, asset id
        self.headers: dict[str, tuple[tuple[int, int], list[tuple[bytes, bytes]]]] = {}

    def verified(self, services: Any, token: str, asset: str,
                 client_ip: str | None) -> tuple[int, UUID] | None:
        """A player fetches hundreds of segments with one token: verify it once per (token, asset, client)."""
        key = (token, asset, client_ip)
        hit = self.tokens.get(key)
        if hit is None:
            asset_id = UUID(asset)
            claims = verify_token(services.settings, token, asset_id, client_ip=client_ip)
            if len(self.tokens) > 10_000:
                self.tokens.clear()
            hit = self.tokens[key] = (claims.e, asset_id)
        if hit[0] < time.time():
            return None  # expired since: the slow path says so
        return hit

    def folder(self, services: Any, hls_base: str) -> str:
        folder = self.folders.get(hls_base)
        if folder is None:
            if len(self.folders) > 10_000:
                self.folders.clear()
            folder = self.folders[hls_base] = str(services.storage.local_path(hls_base))
        return folder


def _answer(services: Any, known: _Known, scope: Scope) -> tuple[str, list[tuple[bytes, bytes]]] | None:
    if any(name in _SKIP_HEADERS for name, _ in scope["headers"]):
        return None
    parts = scope["path"].split("/", 4)  # "", "hls", token, asset id, path
    if len(parts) != 5 or not SAFE_PATH.match(parts[4]):
        return None
    client = scope.get("client")
    try:
        verified = known.verified(services, parts[2], parts[3], client[0] if client else None)
    except Exception:
        return None
    if verified is None:
        return None
    asset_id = verified[1]
    target = cached_target(asset_id)
    if known.mode is None:
        known.mode = segment_delivery(services)
    if target is None or target.hls_base is None or known.mode != "proxy":
        return None
    file = f"{known.folder(services, target.hls_base)}/{parts[4]}"  # SAFE_PATH: no "..", nothing absolute
    try:
        stat = os.stat(file)
    except OSError:
        return None
    version = (stat.st_size, stat.st_mtime_ns)
    cached = known.headers.get(file)
    if cached is not None and cached[0] == version:
        return file, cached[1]
    if parts[4].endswith(".m3u8"):
        cache = playlist_cache_control(target, services.settings.playback.playlist_max_age_seconds)
    else:
        cache = SEGMENT_CACHE
    modified = datetime.fromtimestamp(int(stat.st_mtime), timezone.utc)
    headers = [
        (b"content-type", CONTENT_TYPES.get(parts[4].rsplit(".", 1)[-1]) or content_type_for(parts[4]).encode()),
        (b"content-length", str(stat.st_size).encode()),
        (b"etag", f'"{stat.st_size:x}-{int(stat.st_mtime_ns):x}"'.encode()),
        (b"last-modified", format_datetime(modified, usegmt=True).encode()),
        (b"accept-ranges", b"bytes"),
        (b"cache-control", cache.encode()),
        *_STORED,
    ]
    if len(known.headers) > 10_000:
        known.headers.clear()
    known.headers[file] = (version, headers)
    return file, headers

