"""Zoom webhook signatures: ``x-zm-signature: v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")>``."""

from __future__ import annotations

import hashlib
import hmac
import time

from mediasvc.plugin import Unauthorized


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    message = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def encrypted_token(secret: str, plain_token: str) -> str:
    """The answer to ``endpoint.url_validation``: hex HMAC-SHA256(secret, plainToken)."""
    return hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()


def verify(secret: str, *, signature: str | None, timestamp: str | None, body: bytes, tolerance_seconds: int,
           now: float | None = None) -> None:
    """Raise ``Unauthorized`` unless the signature matches and the timestamp is within ±tolerance."""
    if not secret:
        raise Unauthorized("Zoom webhooks are not configured: set plugins.zoom.webhook_secret_token")
    if not signature or not timestamp:
        raise Unauthorized("Missing x-zm-signature or x-zm-request-timestamp header")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise Unauthorized("x-zm-request-timestamp is not a number of seconds") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_seconds:
        raise Unauthorized("Webhook timestamp outside the allowed window (replayed or clock skew)",
                           details={"tolerance_seconds": tolerance_seconds})
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise Unauthorized("Invalid x-zm-signature")
