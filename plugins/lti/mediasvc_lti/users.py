"""LTI users and courses: written by launches, read by the tool's pages and by other plugins.

``find_user`` is the stable interface other plugins (Zoom attendance) use to match people to LTI users.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from piccolo.query import WhereRaw

from mediasvc_lti.tables import Context, User
from mediasvc_lti.validation import LaunchClaims


class LtiUser(msgspec.Struct, frozen=True):
    """A person as an LMS knows them. ``role`` is ours (``instructor`` | ``learner``), from their last launch."""

    id: UUID
    tenant_id: UUID
    issuer: str
    sub: str
    email: str
    name: str
    role: str
    roles: list[str]
    created_at: datetime
    last_launch_at: datetime


async def find_user(tenant_id: UUID, *, email: str | None = None, lti_sub: str | None = None) -> LtiUser | None:
    """The tenant's LTI user with this email (case-insensitive) and/or platform ``sub``; the most recently
    launched one when several platforms know the same person. None when neither is given or nobody matches."""
    if not email and not lti_sub:
        return None
    query = User.select().where(User.tenant == tenant_id)
    if email:
        query = query.where(WhereRaw("lower(email) = lower({})", email.strip()))
    if lti_sub:
        query = query.where(User.sub == lti_sub)
    row = await query.order_by(User.last_launch_at, ascending=False).output(load_json=True).first()
    return None if row is None else _to_user(row)


def _to_user(row: dict[str, Any]) -> LtiUser:
    return LtiUser(id=row["id"], tenant_id=row["tenant"], issuer=row["issuer"], sub=row["sub"], email=row["email"],
                   name=row["name"], role=row["role"], roles=list(row["roles"] or []), created_at=row["created_at"],
                   last_launch_at=row["last_launch_at"])


async def upsert_user(tenant_id: UUID, claims: LaunchClaims) -> UUID:
    """Create or refresh the user named by (tenant, iss, sub) with what this launch says about them."""
    rows = await User.raw(
        "INSERT INTO lti_users (id, tenant, issuer, sub, email, name, roles, role, created_at, last_launch_at) "
        "VALUES (gen_random_uuid(), {}, {}, {}, {}, {}, {}::jsonb, {}, now(), now()) "
        "ON CONFLICT (tenant, issuer, sub) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, "
        "roles = EXCLUDED.roles, role = EXCLUDED.role, last_launch_at = now() RETURNING id",
        tenant_id, claims.issuer, claims.sub[:255], claims.email[:320], claims.name[:300],
        msgspec.json.encode(claims.roles).decode(), claims.role,
    )
    return rows[0]["id"]


async def upsert_context(tenant_id: UUID, platform_id: UUID, context: dict[str, Any] | None) -> UUID | None:
    """The course of a launch (None when the launch has no context claim)."""
    if not context or not context.get("id"):
        return None
    rows = await Context.raw(
        "INSERT INTO lti_contexts (id, tenant, platform, context_id, label, title, created_at, updated_at) "
        "VALUES (gen_random_uuid(), {}, {}, {}, {}, {}, now(), now()) "
        "ON CONFLICT (platform, context_id) DO UPDATE SET label = EXCLUDED.label, title = EXCLUDED.title, "
        "updated_at = now() RETURNING id",
        tenant_id, platform_id, str(context["id"])[:255], str(context.get("label") or "")[:255],
        str(context.get("title") or "")[:500],
    )
    return rows[0]["id"]
