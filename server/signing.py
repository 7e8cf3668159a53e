"""HMAC-signed, expiring URLs for what the local backend serves (and later, local presigned PUTs).

A signed URL carries ``exp`` (unix seconds), optional bound parameters, and ``sig``: base64url(HMAC-SHA256) over
``METHOD\\npath\\nexp\\nsorted bound params``. Verification is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlencode


def _signature(secret: str, method: str, path: str, expires: int, params: dict[str, str]) -> str:
    bound = "&".join(f"{k}={params[k]}" for k in sorted(params))
    message = f"{method.upper()}\n{path}\n{expires}\n{bound}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_path(
    secret: str, path: str, *, method: str = "GET", expires_in: int = 900, params: dict[str, str] | None = None,
    now: float | None = None,
) -> str:
    """Return ``path?…&exp=…&sig=…`` valid for ``expires_in`` seconds."""
    params = dict(params or {})
    expires = int((now if now is not None else time.time()) + expires_in)
    sig = _signature(secret, method, path, expires, params)
    return f"{path}?{urlencode({**params, 'exp': expires, 'sig': sig})}"


def verify_path(
    secret: str, path: str, query: dict[str, str], *, method: str = "GET", now: float | None = None
) -> bool:
    """True when ``query`` holds a valid, unexpired signature for ``method path``."""
    query = dict(query)
    sig = query.pop("sig", "")
    try:
        expires = int(query.pop("exp", ""))
    except ValueError:
        return False
    if expires < (now if now is not None else time.time()):
        return False
    expected = _signature(secret, method, path, expires, query)
    # bytes: a non-ASCII sig is a mismatch (compare_digest raises on non-ASCII str: that was a 500)
    return hmac.compare_digest(expected.encode(), sig.encode())
