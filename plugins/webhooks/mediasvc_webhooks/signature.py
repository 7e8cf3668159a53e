"""Standard Webhooks signatures: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``.

A secret starting with ``whsec_`` is base64 after the prefix (as Standard Webhooks issues them); any other secret
is used as its UTF-8 bytes. Receivers can import ``verify`` to check what we send.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key for ``secret``; raises ``ValueError`` for a ``whsec_`` secret that is not base64."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` value for one message."""
    payload = body.encode() if isinstance(body, str) else body
    signed = f"{msg_id}.{timestamp}.".encode() + payload
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance_seconds: int = 300,
    *,
    now: float | None = None,
) -> bool:
    """True when ``headers`` carry a valid v1 signature of ``body`` made within ``tolerance_seconds`` of now."""
    lowered = {key.lower(): value for key, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not msg_id or not timestamp_text.isdigit() or not signatures:
        return False
    timestamp = int(timestamp_text)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, msg_id, timestamp, body)
    # The header may list several space-separated signatures (secret rotation); any valid v1 one will do.
    return any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in signatures.split())
