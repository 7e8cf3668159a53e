"""The LTI session after a launch: a signed token naming the launch row, sent as a ``SameSite=None; Secure;
HttpOnly`` cookie and, for browsers that block third-party cookies, carried in the pages' forms."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from litestar import Request
from litestar.datastructures import Cookie

from mediasvc_lti import tokens
from mediasvc_lti.runtime import SESSION_COOKIE, LtiRuntime
from mediasvc_lti.tables import Launch
from mediasvc.plugin import Unauthorized

FORM_FIELD = "lti_session"


def session_token(lti: LtiRuntime, launch_id: UUID) -> str:
    return tokens.sign_token(lti.secret, tokens.SESSION, launch_id.hex, lti.lti.session_ttl_seconds)


def session_cookie(lti: LtiRuntime, token: str) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value=token, path="/lti", max_age=lti.lti.session_ttl_seconds, secure=True,
                  httponly=True, samesite="none")


async def load_session(lti: LtiRuntime, request: Request[Any, Any, Any], *, token: Any = None,
                       cookie_allowed: bool = True) -> dict[str, Any]:
    """The launch behind the session: ``token`` (a form field or query parameter) or, for reads, the cookie.
    State-changing forms pass ``cookie_allowed=False``: the token in the form is their CSRF protection."""
    token = token if isinstance(token, str) else None  # a multipart file in its place is no token
    token = token or (request.cookies.get(SESSION_COOKIE) if cookie_allowed else None)
    if not token:
        raise Unauthorized("No LTI session: launch the tool from your course")
    launch_hex = tokens.verify_token(lti.secret, tokens.SESSION, token)
    if launch_hex is None:
        raise Unauthorized("The LTI session is invalid or has expired: launch the tool again")
    row = await Launch.select(
        Launch.all_columns(), Launch.user.name.as_alias("user_name"), Launch.user.email.as_alias("user_email"),
        Launch.context.title.as_alias("context_title"), Launch.context.label.as_alias("context_label"),
        Launch.platform.issuer.as_alias("issuer"), Launch.platform.client_id.as_alias("client_id"),
    ).where(Launch.id == UUID(hex=launch_hex)).output(load_json=True).first()
    if row is None or row["expires_at"] < datetime.now(timezone.utc):
        raise Unauthorized("The LTI session has ended: launch the tool again")
    row["token"] = token
    return row
