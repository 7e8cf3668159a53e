"""Platform registrations (one LMS each, per tenant): create, list, fetch, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import msgspec

from mediasvc_lti.tables import Platform
from mediasvc.plugin import BadRequest, Conflict, NotFound, ValidationFailed


class PlatformCreate(msgspec.Struct, forbid_unknown_fields=True):
    issuer: str
    client_id: str
    deployment_ids: list[str]
    auth_login_url: str
    jwks_url: str
    auth_token_url: str = ""
    name: str = ""


class ToolUrls(msgspec.Struct):
    """What to enter in the platform when registering the tool there."""

    login_url: str
    launch_url: str
    jwks_url: str
    deep_linking_url: str


class PlatformOut(msgspec.Struct):
    id: UUID
    name: str
    issuer: str
    client_id: str
    deployment_ids: list[str]
    auth_login_url: str
    auth_token_url: str
    jwks_url: str
    created_at: datetime
    tool: ToolUrls | None = None


def check_platform(data: PlatformCreate, *, allow_insecure: bool) -> None:
    """ValidationFailed naming the first bad field."""
    for name, limit in (("issuer", 500), ("client_id", 255), ("name", 200)):
        value = getattr(data, name)
        if (name != "name" and not value.strip()) or len(value) > limit:
            raise ValidationFailed(f"{name} must be 1 to {limit} characters", details={"field": name})
    if not data.deployment_ids or not all(d.strip() and len(d) <= 255 for d in data.deployment_ids):
        raise ValidationFailed("deployment_ids must list at least one deployment id (1 to 255 characters each)",
                               details={"field": "deployment_ids"})
    urls = {"auth_login_url": data.auth_login_url, "jwks_url": data.jwks_url}
    if data.auth_token_url:
        urls["auth_token_url"] = data.auth_token_url
    for name, url in urls.items():
        check_url(name, url, allow_insecure=allow_insecure)


def check_url(name: str, url: str, *, allow_insecure: bool) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValidationFailed(f"{name} is not a valid URL: {exc}", details={"field": name}) from exc
    allowed = ("https", "http") if allow_insecure else ("https",)
    if parsed.scheme not in allowed or not parsed.host:
        raise ValidationFailed(f"{name} must be an {' or '.join(s + '://' for s in allowed)} URL with a host",
                               details={"field": name})


async def create_platform(tenant_id: UUID, data: PlatformCreate) -> dict[str, Any]:
    row = Platform(tenant=tenant_id, name=data.name, issuer=data.issuer, client_id=data.client_id,
                   deployment_ids=data.deployment_ids, auth_login_url=data.auth_login_url,
                   auth_token_url=data.auth_token_url, jwks_url=data.jwks_url)
    try:
        await row.save()
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("A platform with this issuer and client_id is already registered",
                       details={"issuer": data.issuer, "client_id": data.client_id}) from exc
    return await get_platform(tenant_id, row.id)


async def list_platforms(tenant_id: UUID) -> list[dict[str, Any]]:
    return await Platform.select().where(Platform.tenant == tenant_id).order_by(Platform.created_at).output(
        load_json=True)


async def get_platform(tenant_id: UUID, platform_id: UUID) -> dict[str, Any]:
    row = await Platform.select().where(Platform.tenant == tenant_id, Platform.id == platform_id).output(
        load_json=True).first()
    if row is None:
        raise NotFound(f"Platform registration {platform_id} not found", details={"id": str(platform_id)})
    return row


async def delete_platform(tenant_id: UUID, platform_id: UUID) -> None:
    deleted = await Platform.delete().where(Platform.tenant == tenant_id, Platform.id == platform_id).returning(
        Platform.id)
    if not deleted:
        raise NotFound(f"Platform registration {platform_id} not found", details={"id": str(platform_id)})


async def platform_for_login(issuer: str, client_id: str | None) -> dict[str, Any]:
    """The registration a login initiation names; client_id may be left out when the issuer is unambiguous."""
    query = Platform.select().where(Platform.issuer == issuer)
    if client_id:
        query = query.where(Platform.client_id == client_id)
    rows = await query.limit(2).output(load_json=True)
    if not rows:
        raise BadRequest("No platform is registered for this issuer and client_id",
                         details={"iss": issuer, "client_id": client_id})
    if len(rows) > 1:
        raise BadRequest("Several registrations share this issuer: the login must send client_id",
                         details={"iss": issuer})
    return rows[0]


def to_platform_out(row: dict[str, Any], tool: ToolUrls | None = None) -> PlatformOut:
    fields = {k: row[k] for k in PlatformOut.__struct_fields__ if k in row}
    return msgspec.convert({**fields, "tool": tool}, PlatformOut, from_attributes=True)
