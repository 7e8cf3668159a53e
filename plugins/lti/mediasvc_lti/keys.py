"""The tool's RSA signing keys, per tenant: one active key signs; rotated-out keys stay published in the JWKS
until retired. Private keys are stored as PEM encrypted with a key derived from the service secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from mediasvc_lti.tables import ToolKey
from mediasvc.plugin import Conflict, NotFound


class ToolKeyInfo(msgspec.Struct):
    kid: str
    active: bool
    created_at: datetime
    retired_at: datetime | None


def _password(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"mediasvc-lti-tool-key", hashlib.sha256).hexdigest().encode()


def _new_key_row(tenant_id: UUID, secret: str) -> ToolKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = secrets.token_hex(12)
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    jwk.update(kid=kid, alg="RS256", use="sig")
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.BestAvailableEncryption(_password(secret)))
    return ToolKey(tenant=tenant_id, kid=kid, private_key_pem=pem.decode(), public_jwk=jwk, active=True)


async def _lock_tenant_keys(tenant_id: UUID) -> None:
    await ToolKey.raw("SELECT pg_advisory_xact_lock(hashtext({}))", f"lti-keys:{tenant_id}")


async def rotate_key(tenant_id: UUID, secret: str) -> ToolKeyInfo:
    """A new active key; the previous one stays published (inactive) until retired."""
    async with ToolKey._meta.db.transaction():
        await _lock_tenant_keys(tenant_id)
        await ToolKey.update({ToolKey.active: False}).where(ToolKey.tenant == tenant_id, ToolKey.active.eq(True))
        row = _new_key_row(tenant_id, secret)
        await row.save()
    return ToolKeyInfo(kid=row.kid, active=True, created_at=row.created_at, retired_at=None)


async def ensure_key(tenant_id: UUID, secret: str) -> None:
    """Create the tenant's first key if it has no active one."""
    async with ToolKey._meta.db.transaction():
        await _lock_tenant_keys(tenant_id)
        exists = await ToolKey.exists().where(ToolKey.tenant == tenant_id, ToolKey.active.eq(True))
        if not exists:
            await _new_key_row(tenant_id, secret).save()


async def active_signing_key(tenant_id: UUID, secret: str) -> tuple[str, Any]:
    """(kid, private key) of the tenant's active key, created on first use."""
    await ensure_key(tenant_id, secret)
    row = await ToolKey.select(ToolKey.kid, ToolKey.private_key_pem).where(
        ToolKey.tenant == tenant_id, ToolKey.active.eq(True)).first()
    if row is None:  # a concurrent rotation between the two statements; the lock makes it unreachable otherwise
        raise Conflict("The tool key changed during this request; try again")
    key = serialization.load_pem_private_key(row["private_key_pem"].encode(), password=_password(secret))
    return row["kid"], key


async def sign_jwt(tenant_id: UUID, secret: str, claims: dict[str, Any]) -> str:
    """RS256 with the tenant's active key, its kid in the header."""
    kid, key = await active_signing_key(tenant_id, secret)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})


async def list_keys(tenant_id: UUID) -> list[ToolKeyInfo]:
    rows = await ToolKey.select(ToolKey.kid, ToolKey.active, ToolKey.created_at, ToolKey.retired_at).where(
        ToolKey.tenant == tenant_id).order_by(ToolKey.created_at, ascending=False)
    return [msgspec.convert(row, ToolKeyInfo) for row in rows]


async def retire_key(tenant_id: UUID, kid: str) -> None:
    """Stop publishing an inactive key: tokens it signed no longer verify. The active key cannot be retired."""
    row = await ToolKey.select(ToolKey.active, ToolKey.retired_at).where(
        ToolKey.tenant == tenant_id, ToolKey.kid == kid).first()
    if row is None:
        raise NotFound(f"Tool key {kid!r} not found", details={"kid": kid})
    if row["active"]:
        raise Conflict("The active tool key cannot be retired: rotate first", details={"kid": kid})
    if row["retired_at"] is None:
        await ToolKey.update({ToolKey.retired_at: datetime.now(timezone.utc)}).where(ToolKey.kid == kid)


async def published_jwks() -> dict[str, list[dict[str, Any]]]:
    """Every tenant's non-retired public key (public keys only; platforms pick theirs by kid)."""
    rows = await ToolKey.select(ToolKey.public_jwk).where(ToolKey.retired_at.is_null()).order_by(
        ToolKey.created_at).output(load_json=True)
    return {"keys": [row["public_jwk"] for row in rows]}
