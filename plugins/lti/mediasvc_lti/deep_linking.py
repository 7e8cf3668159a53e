"""Deep Linking 2.0: an instructor picks one of the tenant's ready assets; we post an ``LtiDeepLinkingResponse``
JWT (RS256, the tenant's active tool key, its kid in the header) back to ``deep_link_return_url`` through an
auto-submitting form."""

from __future__ import annotations

import secrets
import time
from typing import Any

from litestar import Request, post
from litestar.response import Template

from mediasvc_lti import claims as c
from mediasvc_lti import keys
from mediasvc_lti.course import add_to_course, parse_asset_id, tenant_asset
from mediasvc_lti.runtime import LtiRuntime
from mediasvc_lti.session import FORM_FIELD, load_session
from mediasvc_lti import openapi
from mediasvc.plugin import Asset, BadRequest, Forbidden

RESPONSE_TTL_SECONDS = 600
PICKER_LIMIT = 200
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


async def render_picker(lti: LtiRuntime, launch: dict[str, Any]) -> Template:
    assets = await Asset.select(Asset.id, Asset.original_name.as_alias("name"), Asset.kind, Asset.created_at).where(
        Asset.tenant == launch["tenant"], Asset.status == "ready").order_by(Asset.created_at, ascending=False).limit(
        PICKER_LIMIT)
    return Template(template_name="lti/picker.html", context={"launch": launch, "assets": assets,
                                                              "session_field": FORM_FIELD}, headers=NO_STORE)


def response_claims(lti: LtiRuntime, launch: dict[str, Any], asset: dict[str, Any]) -> dict[str, Any]:
    settings = launch["claims"].get("deep_linking_settings") or {}
    now = int(time.time())
    item = {"type": "ltiResourceLink", "title": asset["original_name"] or f"{asset['kind']} {asset['id']}",
            "url": lti.launch_url, "custom": {"asset_id": str(asset["id"])}}
    body: dict[str, Any] = {
        "iss": launch["client_id"], "aud": launch["issuer"], "iat": now, "exp": now + RESPONSE_TTL_SECONDS,
        "nonce": secrets.token_urlsafe(16), c.MESSAGE_TYPE: c.DEEP_LINKING_RESPONSE, c.VERSION: c.LTI_VERSION,
        c.DEPLOYMENT_ID: launch["deployment_id"], c.CONTENT_ITEMS: [item],
    }
    if settings.get("data"):
        body[c.DL_DATA] = settings["data"]
    return body


@post("/deep-link", name="lti_deep_link", status_code=200, opt=openapi.DEEP_LINK)
async def deep_link(request: Request[Any, Any, Any], lti: LtiRuntime) -> Template:
    """The instructor's choice: answer the platform with a signed LtiDeepLinkingResponse."""
    form = await request.form()
    launch = await load_session(lti, request, token=form.get(FORM_FIELD), cookie_allowed=False)
    if launch["message_type"] != c.DEEP_LINKING_REQUEST:
        raise BadRequest("This session did not come from a deep linking request")
    if launch["role"] != c.INSTRUCTOR:
        raise Forbidden("Only instructors can add media to a course (deep linking)")
    settings = launch["claims"].get("deep_linking_settings") or {}
    accept = settings.get("accept_types") or ["ltiResourceLink"]
    if "ltiResourceLink" not in accept:
        raise BadRequest("The platform does not accept LTI resource links here", details={"accept_types": accept})
    asset = await tenant_asset(launch["tenant"], parse_asset_id(form.get("asset_id")), ready=True)
    jwt_value = await keys.sign_jwt(launch["tenant"], lti.secret, response_claims(lti, launch, asset))
    if launch["context"] is not None:
        await add_to_course(launch["context"], asset["id"], launch["user"])
    return Template(template_name="lti/autopost.html", headers=NO_STORE,
                    context={"action": settings["deep_link_return_url"], "fields": {"JWT": jwt_value}})
