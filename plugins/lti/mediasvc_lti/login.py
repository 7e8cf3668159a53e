"""OIDC login initiation (IMS Security Framework §5.1.1): the platform names itself, we answer with a redirect to
its authorization endpoint carrying a fresh state and nonce.

State: a random id, HMAC-signed with an expiry, kept server-side with the nonce (``lti_nonces``, single use) and
set in a ``SameSite=None; Secure; HttpOnly`` cookie scoped to /lti/launch. See docs/lti.md for the fallback when the
browser blocks third-party cookies.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from litestar import Request, route
from litestar.datastructures import Cookie
from litestar.response import Redirect

from mediasvc_lti import tokens
from mediasvc_lti.registrations import platform_for_login
from mediasvc_lti.runtime import STATE_COOKIE_PREFIX, LtiRuntime
from mediasvc_lti.tables import Nonce
from mediasvc_lti import openapi
from mediasvc.plugin import BadRequest, Forbidden

REQUIRED = ("iss", "login_hint", "target_link_uri")


async def login_params(request: Request[Any, Any, Any]) -> dict[str, str]:
    params = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
    if request.method == "POST":
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    missing = [name for name in REQUIRED if not params.get(name)]
    if missing:
        raise BadRequest(f"Login initiation is missing {', '.join(missing)}", details={"missing": missing})
    return params


@route("/login", http_method=["GET", "POST"], name="lti_login", opt=openapi.LOGIN)
async def login(request: Request[Any, Any, Any], lti: LtiRuntime) -> Redirect:
    """Third-party initiated login: redirect to the platform's auth login URL (form_post, id_token, prompt=none)."""
    params = await login_params(request)
    platform = await platform_for_login(params["iss"], params.get("client_id"))
    deployment = params.get("lti_deployment_id")
    if deployment and deployment not in platform["deployment_ids"]:
        raise Forbidden(f"Unknown deployment {deployment!r} for this platform", details={"deployment_id": deployment})
    target = params["target_link_uri"]
    if not (target == lti.base_url or target.startswith(lti.base_url + "/")):
        raise BadRequest("target_link_uri is not a URL of this tool", details={"target_link_uri": target,
                                                                              "tool": lti.base_url})
    state_id, nonce = secrets.token_hex(16), secrets.token_urlsafe(24)
    now = datetime.now(timezone.utc)
    await Nonce.delete().where(Nonce.expires_at < now - timedelta(hours=1))  # keep the table small
    await Nonce(platform=platform["id"], state_id=state_id, nonce=nonce, target_link_uri=target,
                expires_at=now + timedelta(seconds=lti.lti.state_ttl_seconds)).save()
    state = tokens.sign_token(lti.secret, tokens.STATE, state_id, lti.lti.state_ttl_seconds)
    query = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post", "prompt": "none",
             "client_id": platform["client_id"], "redirect_uri": lti.launch_url, "login_hint": params["login_hint"],
             "state": state, "nonce": nonce}
    if params.get("lti_message_hint"):
        query["lti_message_hint"] = params["lti_message_hint"]
    url = platform["auth_login_url"]
    cookie = Cookie(key=STATE_COOKIE_PREFIX + state_id, value=state, path="/lti/launch",
                    max_age=lti.lti.state_ttl_seconds, secure=True, httponly=True, samesite="none")
    return Redirect(f"{url}{'&' if '?' in url else '?'}{urlencode(query)}", status_code=302, cookies=[cookie])
