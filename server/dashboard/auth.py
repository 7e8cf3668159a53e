"""Dashboard operators: scrypt passwords, server-side sessions behind an HttpOnly cookie, CSRF, roles.

The cookie holds a random token; only its sha256 is stored (``operator_sessions``), so logging out or disabling an
operator ends the session at once. Each session has a CSRF token: forms send it as ``_csrf``, htmx as the
``X-CSRF-Token`` header (``hx-headers`` on <body>); every unsafe method is refused without it. The login form,
before any session exists, uses a double-submit cookie.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from mediasvc.errors import Forbidden, Unauthorized, ValidationFailed
from mediasvc.tables import Operator as OperatorRow
from mediasvc.tables import OperatorSession, Tenant

COOKIE = "mediasvc_session"
LOGIN_CSRF_COOKIE = "mediasvc_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "_csrf"
SESSION_TTL = timedelta(hours=12)
ROLES = ("admin", "viewer")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class LoginRequired(Unauthorized):
    """No valid session: pages redirect to the login form, htmx requests get ``HX-Redirect``."""


class Operator(msgspec.Struct, frozen=True):
    """The signed-in operator, on ``request.state.operator``. ``tenant_id`` None: every tenant."""

    id: UUID
    email: str
    role: str
    tenant_id: UUID | None
    tenant_slug: str | None
    csrf_token: str
    session_id: UUID

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# --- passwords -----------------------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 * 1024 * 1024, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return scheme == "scrypt" and hmac.compare_digest(actual, expected)


_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))  # unknown emails cost the same time as wrong passwords


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- operators and sessions ----------------------------------------------------------------------------------


async def create_operator(email: str, password: str, role: str, tenant_slug: str | None = None) -> UUID:
    email = email.strip().lower()
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}", details={"roles": list(ROLES)})
    if "@" not in email:
        raise ValidationFailed(f"{email!r} is not an email address")
    if len(password) < 8:
        raise ValidationFailed("The password must have at least 8 characters")
    if await OperatorRow.exists().where(OperatorRow.email == email):
        raise ValidationFailed(f"An operator {email!r} already exists")
    tenant_id = None
    if tenant_slug:
        from mediasvc.auth import get_or_create_tenant

        tenant_id = await get_or_create_tenant(tenant_slug)
    row = OperatorRow(email=email, password_hash=await asyncio.to_thread(hash_password, password), role=role,
                      tenant=tenant_id)
    await row.save()
    return row.id


async def login(email: str, password: str) -> str | None:
    """A new session token for valid credentials, else None (same cost whether or not the email exists)."""
    row = await OperatorRow.select(OperatorRow.id, OperatorRow.password_hash).where(
        OperatorRow.email == email.strip().lower(), OperatorRow.disabled_at.is_null()).first()
    ok = await asyncio.to_thread(verify_password, password, row["password_hash"] if row else _DUMMY_HASH)
    if row is None or not ok:
        return None
    token = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    await OperatorSession.insert(OperatorSession(token_hash=_sha256(token), operator=row["id"],
                                                 csrf_token=secrets.token_urlsafe(32), expires_at=now + SESSION_TTL))
    await OperatorRow.update({OperatorRow.last_login_at: now}).where(OperatorRow.id == row["id"])
    await OperatorSession.delete().where(OperatorSession.operator == row["id"], OperatorSession.expires_at < now)
    return token


async def logout(token: str | None) -> None:
    if token:
        await OperatorSession.delete().where(OperatorSession.token_hash == _sha256(token))


async def load_operator(token: str | None) -> Operator | None:
    if not token:
        return None
    rows = await OperatorSession.raw(
        "SELECT s.id AS session_id, s.csrf_token, o.id, o.email, o.role, o.tenant AS tenant_id, t.slug AS tenant_slug "
        "FROM operator_sessions s JOIN operators o ON o.id = s.operator LEFT JOIN tenants t ON t.id = o.tenant "
        "WHERE s.token_hash = {} AND s.expires_at > now() AND o.disabled_at IS NULL",
        _sha256(token),
    )
    return msgspec.convert(rows[0], Operator) if rows else None


async def tenant_slugs() -> list[str]:
    return [r["slug"] for r in await Tenant.select(Tenant.slug).order_by(Tenant.slug)]


# --- guards --------------------------------------------------------------------------------------------------


def _same(submitted: str, expected: str) -> bool:
    """Constant-time comparison; bytes, so a non-ASCII submission is a mismatch rather than a TypeError."""
    return hmac.compare_digest(submitted.encode(), expected.encode())


async def _submitted_csrf(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    token = connection.headers.get(CSRF_HEADER)
    if token:
        return token
    content_type = connection.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await connection.form()  # type: ignore[attr-defined]  # guards of HTTP routes get the Request
        return str(form.get(CSRF_FIELD) or "")
    return ""


async def operator_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Dashboard router guard: a valid session (unless ``opt["public"]``), and the CSRF token on unsafe methods."""
    if handler.opt.get("public"):
        return
    operator = await load_operator(connection.cookies.get(COOKIE))
    if operator is None:
        raise LoginRequired("Sign in to use the dashboard")
    connection.state.operator = operator
    if connection.scope["method"] not in SAFE_METHODS and not _same(await _submitted_csrf(connection),
                                                                      operator.csrf_token):
        raise Forbidden("Missing or invalid CSRF token: reload the page and try again")


async def login_csrf_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The login form's double-submit token: the hidden field must equal the cookie set with the form."""
    cookie = connection.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not cookie or not _same(await _submitted_csrf(connection), cookie):
        raise Forbidden("Missing or invalid CSRF token: reload the login page and try again")


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    operator: Operator | None = getattr(connection.state, "operator", None)
    if operator is None or not operator.is_admin:
        raise Forbidden("Only admins can do this")
