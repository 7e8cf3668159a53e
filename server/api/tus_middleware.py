"""What every tus route answers the same way, before and after Litestar's routing: ``Tus-Resumable`` on every
response, ``OPTIONS`` (capability discovery) without an API key, and a drained body before an early error."""

from __future__ import annotations

import asyncio
import contextlib

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from mediasvc.ingest.tus_headers import CHECKSUM_ALGORITHMS, EXTENSIONS, SUPPORTED_VERSIONS, TUS_VERSION
from mediasvc.ingest.tus_uploads import max_upload_size
from mediasvc.services import Services

DRAIN_LIMIT = 16 * 1024 * 1024
DRAIN_SECONDS = 10.0


def tus_middleware(app: ASGIApp) -> ASGIApp:
    """``Tus-Resumable: 1.0.0`` on every response of the tus routes (errors included); the answer to
    ``OPTIONS`` (capability discovery; no key needed, like a CORS preflight) before any guard runs; and, when
    an error is answered before the request body was read (409, 423, 412...), the rest of the body (up to
    ``DRAIN_LIMIT``) is read and dropped first: a server that closes on unread data makes the client see a
    reset instead of the error (Granian does not linger on close)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            services: Services = scope["app"].state.services
            headers = [(b"tus-resumable", TUS_VERSION.encode())]
            headers += [(k.lower().encode(), v.encode()) for k, v in _capabilities(services).items()]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body_done = scope["method"] in ("GET", "HEAD", "DELETE")

        async def tracking_receive() -> Message:
            nonlocal body_done
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                body_done = True
            return message

        async def drain() -> None:
            dropped = 0
            with contextlib.suppress(Exception):
                async with asyncio.timeout(DRAIN_SECONDS):
                    while not body_done and dropped <= DRAIN_LIMIT:
                        dropped += len((await tracking_receive()).get("body", b""))

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] >= 400 and not body_done:
                    await drain()
                headers = [*message.get("headers", []), (b"tus-resumable", TUS_VERSION.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, tracking_receive, send_with_version)

    return middleware


def _capabilities(services: Services) -> dict[str, str]:
    return {
        "Tus-Version": ",".join(SUPPORTED_VERSIONS),
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(max_upload_size(services.settings)),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }
