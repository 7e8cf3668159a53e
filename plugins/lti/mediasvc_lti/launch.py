"""``POST /lti/launch``: the platform's form_post of ``id_token`` and ``state``. Verified, then the user, course
and launch are recorded, an LTI session starts, and the right page is rendered in the same response (so the
first page works even where the browser blocks third-party cookies)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from litestar import Request, post
from litestar.datastructures import Cookie
from litestar.response import Template

from mediasvc_lti import claims as c
from mediasvc_lti import tokens
from mediasvc_lti.course import add_to_course, render_course, tenant_asset
from mediasvc_lti.deep_linking import render_picker
from mediasvc_lti.runtime import STATE_COOKIE_PREFIX, LtiRuntime
from mediasvc_lti.session import session_cookie, session_token
from mediasvc_lti.tables import Launch, Nonce, Platform
from mediasvc_lti.users import upsert_context, upsert_user
from mediasvc_lti.validation import LaunchClaims, verify_id_token
from mediasvc_lti import openapi
from mediasvc.plugin import BadRequest, Forbidden, NotFound, Unauthorized


def check_browser_state(lti: LtiRuntime, request: Request[Any, Any, Any], state: str, state_id: str) -> None:
    """The state must be the one this browser's login set. A browser holding no state cookie at all blocks
    third-party cookies: then the signed, single-use, server-side state stands alone (unless configured not to)."""
    held = {k: v for k, v in request.cookies.items() if k.startswith(STATE_COOKIE_PREFIX)}
    if not held:
        if lti.lti.require_state_cookie:
            raise Unauthorized("No state cookie came with this launch (third-party cookies blocked?)")
        return
    if held.get(STATE_COOKIE_PREFIX + state_id) != state:
        raise Unauthorized("state does not match the login this browser started")


async def claim_login(lti: LtiRuntime, request: Request[Any, Any, Any], state: str) -> dict[str, Any]:
    """The login (nonce row + platform) the state names, not yet used and not expired."""
    state_id = tokens.verify_token(lti.secret, tokens.STATE, state)
    if state_id is None:
        raise Unauthorized("state was not issued by this tool, or it has expired: launch again")
    check_browser_state(lti, request, state, state_id)
    row = await Nonce.select(Nonce.id, Nonce.nonce, Nonce.platform, Nonce.used_at, Nonce.expires_at).where(
        Nonce.state_id == state_id).first()
    if row is None:
        raise Unauthorized("Unknown login state: launch again")
    if row["used_at"] is not None:
        raise Unauthorized("This login was already used: a replayed launch is refused")
    if row["expires_at"] < datetime.now(timezone.utc):
        raise Unauthorized("This login has expired: launch again")
    platform = await Platform.select().where(Platform.id == row["platform"]).output(load_json=True).first()
    if platform is None:
        raise Unauthorized("The platform of this login is no longer registered")
    return {**row, "state_id": state_id, "platform_row": platform}


async def consume_nonce(nonce_row_id: UUID) -> None:
    used = await Nonce.update({Nonce.used_at: datetime.now(timezone.utc)}).where(
        Nonce.id == nonce_row_id, Nonce.used_at.is_null()).returning(Nonce.id)
    if not used:
        raise Unauthorized("This login was already used: a replayed launch is refused")


async def record_launch(lti: LtiRuntime, platform: dict[str, Any], claims: LaunchClaims) -> dict[str, Any]:
    tenant_id = platform["tenant"]
    user_id = await upsert_user(tenant_id, claims)
    context_id = await upsert_context(tenant_id, platform["id"], claims.context)
    kept = {"deep_linking_settings": claims.deep_linking_settings, "custom": claims.custom,
            "target_link_uri": claims.target_link_uri}
    launch = Launch(tenant=tenant_id, platform=platform["id"], user=user_id, context=context_id,
                    message_type=claims.message_type, deployment_id=claims.deployment_id, role=claims.role,
                    resource_link_id=str((claims.resource_link or {}).get("id") or "")[:255], claims=kept,
                    expires_at=datetime.now(timezone.utc) + timedelta(seconds=lti.lti.session_ttl_seconds))
    await launch.save()
    context = claims.context or {}
    return {"id": launch.id, "tenant": tenant_id, "platform": platform["id"], "user": user_id,
            "context": context_id, "message_type": claims.message_type, "deployment_id": claims.deployment_id,
            "role": claims.role, "claims": kept, "user_name": claims.name, "user_email": claims.email,
            "context_title": str(context.get("title") or ""), "context_label": str(context.get("label") or ""),
            "issuer": platform["issuer"], "client_id": platform["client_id"],
            "token": session_token(lti, launch.id)}


@post("/launch", name="lti_launch", status_code=200, opt=openapi.LAUNCH)
async def launch(request: Request[Any, Any, Any], lti: LtiRuntime) -> Template:
    """Verify the id_token, then land on the course page (resource link) or the picker (deep linking)."""
    form = await request.form()
    if form.get("error"):
        raise Unauthorized(f"The platform refused the login: {form.get('error')}",
                           details={"error": form.get("error"), "description": form.get("error_description", "")})
    id_token, state = form.get("id_token"), form.get("state")
    if not isinstance(id_token, str) or not id_token or not isinstance(state, str) or not state:
        raise BadRequest("A launch needs the id_token and state form fields")
    login = await claim_login(lti, request, state)
    platform = login["platform_row"]
    claims = await verify_id_token(id_token, platform, login["nonce"], lti.platform_keys, lti.lti.leeway_seconds)
    await consume_nonce(login["id"])
    launch_row = await record_launch(lti, platform, claims)
    page = await landing_page(lti, launch_row, claims)
    page.cookies.extend([session_cookie(lti, launch_row["token"]),
                         Cookie(key=STATE_COOKIE_PREFIX + login["state_id"], value="", path="/lti/launch", max_age=0,
                                secure=True, httponly=True, samesite="none")])
    return page


async def landing_page(lti: LtiRuntime, launch_row: dict[str, Any], claims: LaunchClaims) -> Template:
    if claims.message_type == c.DEEP_LINKING_REQUEST:
        if claims.role != c.INSTRUCTOR:
            raise Forbidden("Only instructors can add media to a course (deep linking)")
        return await render_picker(lti, launch_row)
    focus = _custom_asset(claims)
    if focus is not None:
        try:
            await tenant_asset(launch_row["tenant"], focus)
        except NotFound:
            focus = None  # a link to media since deleted: show the course
        else:
            if launch_row["context"] is not None:
                await add_to_course(launch_row["context"], focus, None)
    return await render_course(lti, launch_row, focus=focus)


def _custom_asset(claims: LaunchClaims) -> UUID | None:
    value = claims.custom.get("asset_id")
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


