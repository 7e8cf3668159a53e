"""API keys for REST clients: ``Authorization: Bearer msk_…``, scoped to one tenant, stored only as sha256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler

from mediasvc.errors import NotFound, Unauthorized
from mediasvc.tables import ApiKey, Tenant

KEY_PREFIX = "msk_"


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: a tenant, through one API key."""

    tenant_id: UUID
    tenant_slug: str
    api_key_id: UUID


class ApiKeyInfo(msgspec.Struct):
    id: UUID
    tenant: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def get_or_create_tenant(slug: str, name: str | None = None) -> UUID:
    row = await Tenant.select(Tenant.id).where(Tenant.slug == slug).first()
    if row:
        return row["id"]
    tenant = Tenant(slug=slug, name=name or slug)
    await tenant.save()
    return tenant.id


async def create_api_key(tenant_slug: str, name: str = "") -> tuple[str, ApiKeyInfo]:
    """Create a key for the tenant (created if new). The plain key is returned once and never stored."""
    tenant_id = await get_or_create_tenant(tenant_slug)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(tenant=tenant_id, name=name, prefix=key[:12], key_hash=hash_key(key))
    await record.save()
    return key, ApiKeyInfo(id=record.id, tenant=tenant_slug, name=name, prefix=record.prefix,
                           created_at=record.created_at, last_used_at=None, revoked_at=None)


async def list_api_keys(tenant_slug: str | None = None) -> list[ApiKeyInfo]:
    query = ApiKey.select(ApiKey.all_columns(), ApiKey.tenant.slug.as_alias("tenant_slug")).order_by(
        ApiKey.created_at
    )
    if tenant_slug:
        query = query.where(ApiKey.tenant.slug == tenant_slug)
    return [
        ApiKeyInfo(id=r["id"], tenant=r["tenant_slug"], name=r["name"], prefix=r["prefix"],
                   created_at=r["created_at"], last_used_at=r["last_used_at"], revoked_at=r["revoked_at"])
        for r in await query
    ]


async def revoke_api_key(key_id_or_prefix: str) -> int:
    """Revoke by id or by the prefix shown in lists; returns how many keys were revoked."""
    try:
        where = ApiKey.id == UUID(key_id_or_prefix)
    except ValueError:
        where = ApiKey.prefix == key_id_or_prefix
    rows = await ApiKey.update({ApiKey.revoked_at: datetime.now(timezone.utc)}).where(
        where, ApiKey.revoked_at.is_null()
    ).returning(ApiKey.id)
    return len(rows)


async def authenticate(authorization: str | None) -> Principal:
    if not authorization:
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'",
                           headers={"WWW-Authenticate": "Bearer"})
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip().startswith(KEY_PREFIX):
        raise Unauthorized("Malformed Authorization header: expected 'Bearer msk_…'",
                           headers={"WWW-Authenticate": "Bearer"})
    row = await ApiKey.select(ApiKey.id, ApiKey.tenant, ApiKey.tenant.slug.as_alias("slug")).where(
        ApiKey.key_hash == hash_key(key.strip()), ApiKey.revoked_at.is_null()
    ).first()
    if row is None:
        raise Unauthorized("Invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return Principal(tenant_id=row["tenant"], tenant_slug=row["slug"], api_key_id=row["id"])


async def api_key_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Router guard for /api/v1: every handler needs a key unless its ``opt`` says ``public=True``."""
    if handler.opt.get("public"):
        return
    connection.state.principal = await authenticate(connection.headers.get("authorization"))


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:  # only reachable if a public handler asks for a principal: a programming error
        raise NotFound("No principal on a public route")
    return principal


PrincipalDep = NamedDependency[Principal]
