"""Playback tokens: short, URL-path-safe, HMAC-signed grants to play one asset.

Format: ``<payload>.<signature>``, both base64url without padding. The payload is compact JSON
``{"k": key id, "a": asset id, "s": subject, "e": expiry (unix s), "ip": sha256(client ip)[:16] or absent}``.
The key id picks the secret from ``settings.playback.keys``; tokens signed with a key that is still listed keep
working after ``active_key`` moves on (rotation), and stop when the key is removed. The IP is hashed so a token in
a log line does not carry the viewer's address.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from uuid import UUID

import msgspec

from mediasvc.errors import Forbidden
from mediasvc.settings import Settings

DERIVED_KEY_ID = "k0"


class TokenClaims(msgspec.Struct, frozen=True):
    k: str  # key id
    a: str  # asset id
    s: str  # subject (viewer id, session id…)
    e: int  # expiry, unix seconds
    ip: str | None = None  # hashed client IP the token is bound to


class InvalidToken(Forbidden):
    code = "invalid_token"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_keys(settings: Settings) -> tuple[str, dict[str, bytes]]:
    """(active key id, every usable key). Without configured keys: one derived from ``secret_key``."""
    playback = settings.playback
    if playback.keys:
        return playback.active_key, {kid: secret.encode() for kid, secret in playback.keys.items()}
    return DERIVED_KEY_ID, {DERIVED_KEY_ID: _derived_key(settings.secret_key)}


@functools.lru_cache(maxsize=16)
def _derived_key(secret_key: str) -> bytes:
    return hmac.digest(secret_key.encode(), b"mediasvc playback token key", "sha256")


def hash_ip(ip: str) -> str:
    return hashlib.sha256(ip.strip().encode()).hexdigest()[:16]


def issue_token(settings: Settings, asset_id: UUID, subject: str, *, ttl_seconds: int, ip: str | None = None,
                now: float | None = None) -> tuple[str, int]:
    """A token for ``asset_id`` and the unix time it expires."""
    kid, keys = signing_keys(settings)
    expires = int((now if now is not None else time.time()) + ttl_seconds)
    claims = TokenClaims(k=kid, a=str(asset_id), s=subject, e=expires, ip=hash_ip(ip) if ip else None)
    payload = _b64(msgspec.json.encode(claims))
    signature = _b64(hmac.digest(keys[kid], payload.encode(), "sha256"))
    return f"{payload}.{signature}", expires


def verify_token(settings: Settings, token: str, asset_id: UUID, *, client_ip: str | None,
                 now: float | None = None) -> TokenClaims:
    """The token's claims when it is genuine, unexpired, for ``asset_id`` and (if bound) this client's IP;
    otherwise ``InvalidToken`` (403) saying which check failed."""
    payload, _, signature = token.partition(".")
    try:
        claims = msgspec.json.decode(_unb64(payload), type=TokenClaims)
        given = _unb64(signature)
    except (ValueError, msgspec.DecodeError):
        raise InvalidToken("Malformed playback token") from None
    _, keys = signing_keys(settings)
    key = keys.get(claims.k)
    if key is None:
        raise InvalidToken("Playback token signed with an unknown or retired key", details={"kid": claims.k})
    if not hmac.compare_digest(hmac.digest(key, payload.encode(), "sha256"), given):
        raise InvalidToken("Playback token signature is invalid")
    if claims.e < (now if now is not None else time.time()):
        raise InvalidToken("Playback token expired", details={"expired_at": claims.e})
    if claims.a != str(asset_id):
        raise InvalidToken("Playback token is for another asset")
    if claims.ip is not None and (client_ip is None or not hmac.compare_digest(claims.ip, hash_ip(client_ip))):
        raise InvalidToken("Playback token is bound to another IP address")
    return claims
