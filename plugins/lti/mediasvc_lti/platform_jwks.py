"""Platforms' public keys: fetched with httpx from the registered JWKS URL, cached briefly, refetched once when a
token names a kid the cache does not hold (a platform that rotated its key)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from mediasvc_lti.settings import LtiSettings
from mediasvc.plugin import ServiceUnavailable, Unauthorized

log = logging.getLogger("mediasvc.lti.jwks")


@dataclass
class _Entry:
    fetched_at: float
    keys: dict[str, Any]  # kid -> public key object


@dataclass
class PlatformKeys:
    settings: LtiSettings
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def key_for(self, jwks_url: str, kid: str) -> Any:
        """The RSA public key ``kid`` from ``jwks_url``; Unauthorized when the platform does not publish it."""
        entry = self._entries.get(jwks_url)
        if entry is None or time.monotonic() - entry.fetched_at > self.settings.jwks_cache_seconds:
            entry = await self._refresh(jwks_url, entry)
        if kid in entry.keys:
            return entry.keys[kid]
        if time.monotonic() - entry.fetched_at >= self.settings.jwks_min_refetch_seconds:
            entry = await self._refresh(jwks_url, entry)  # the platform may have rotated: refetch once
            if kid in entry.keys:
                return entry.keys[kid]
        raise Unauthorized(f"id_token signed with unknown key id {kid!r}: the platform's JWKS does not publish it",
                           details={"kid": kid})

    async def _refresh(self, jwks_url: str, seen: _Entry | None) -> _Entry:
        lock = self._locks.setdefault(jwks_url, asyncio.Lock())
        async with lock:
            current = self._entries.get(jwks_url)
            if current is not None and current is not seen:  # another request refreshed it meanwhile
                return current
            entry = _Entry(fetched_at=time.monotonic(), keys=await self._fetch(jwks_url))
            self._entries[jwks_url] = entry
            return entry

    async def _fetch(self, jwks_url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.settings.http_timeout_seconds,
                                         follow_redirects=False) as client:
                response = await client.get(jwks_url, headers={"accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("platform JWKS %s unavailable: %r", jwks_url, exc)
            raise ServiceUnavailable("The platform's JWKS could not be fetched; the launch cannot be verified",
                                     details={"jwks_url": jwks_url, "reason": type(exc).__name__}) from exc
        return _rsa_keys(document)


def _rsa_keys(document: Any) -> dict[str, Any]:
    """RS256-capable keys by kid; keys without a kid, of another type or for encryption are skipped."""
    keys: dict[str, Any] = {}
    for jwk in document.get("keys", []) if isinstance(document, dict) else []:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not jwk.get("kid"):
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
            continue
        try:
            keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="RS256").key
        except jwt.PyJWKError:
            continue
    return keys
