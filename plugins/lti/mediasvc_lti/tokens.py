"""Short HMAC-signed tokens: the OIDC ``state`` and the LTI session, bound to a purpose and an expiry.

A token is ``<payload>.<expires>.<base64url HMAC-SHA256 of "purpose\\npayload.expires">``; the payload is a hex id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

STATE = "lti-state"
SESSION = "lti-session"
REGISTRATION = "lti-registration"


def _mac(secret: str, purpose: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"{purpose}\n{body}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_token(secret: str, purpose: str, payload: str, ttl_seconds: int, *, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + ttl_seconds)
    body = f"{payload}.{expires}"
    return f"{body}.{_mac(secret, purpose, body)}"


def verify_token(secret: str, purpose: str, token: str, *, now: float | None = None) -> str | None:
    """The payload of a valid, unexpired token for ``purpose``; None otherwise (constant-time comparison)."""
    payload, _, rest = token.partition(".")
    expires, _, mac = rest.partition(".")
    if not payload or not expires.isdigit() or not mac:
        return None
    # bytes: a non-ASCII mac is a mismatch (compare_digest raises on non-ASCII str: that was a 500)
    if not hmac.compare_digest(_mac(secret, purpose, f"{payload}.{expires}").encode(), mac.encode()):
        return None
    if int(expires) < (now if now is not None else time.time()):
        return None
    return payload
