"""Deep Linking: an instructor picks a ready asset and the platform gets a signed LtiDeepLinkingResponse, verified
here with the tool's own JWKS; the tool key rotates without breaking what the previous key signed."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jwt

from tests.lti_platform import (
    DL,
    LEARNER,
    LTI,
    LtiEnv,
    env_fixture,  # noqa: F401 - the env fixture
    form_fields,
    launch_via_browser,
    lti_app_fixture,  # noqa: F401 - the lti_app fixture
)


def verify_with_jwks(token: str, jwks: dict[str, Any], audience: str) -> dict[str, Any]:
    """What a platform does with the tool's response: pick the key by kid from the tool's JWKS, RS256 only."""
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next((k for k in jwks["keys"] if k["kid"] == kid), None)
    if jwk is None:
        raise LookupError(f"kid {kid} not published")
    return jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=audience)


async def pick(env: LtiEnv, asset_id: Any) -> httpx.Response:
    """Open the picker through a deep-linking launch and choose ``asset_id``."""
    env.platform.next_message_type = "LtiDeepLinkingRequest"
    picker = await launch_via_browser(env.browser, env.platform)
    assert picker.status_code == 200 and 'data-page="picker"' in picker.text, picker.text
    token = re.search(r'name="lti_session" value="([^"]+)"', picker.text).group(1)
    return await env.browser.post("/lti/deep-link", data={"lti_session": token, "asset_id": str(asset_id)})


async def deep_link_jwt(env: LtiEnv, asset_id: Any) -> str:
    response = await pick(env, asset_id)
    assert response.status_code == 200, response.text
    action, fields = form_fields(response.text)
    assert action == env.platform.deep_link_return_url
    return fields["JWT"]


async def test_an_instructor_picks_media_and_the_platform_gets_a_signed_response(env: LtiEnv):
    ready = await env.add_asset("lecture-1.mp4")
    processing = await env.add_asset("still-encoding.mp4", status="processing")
    env.platform.next_message_type = "LtiDeepLinkingRequest"
    picker = await launch_via_browser(env.browser, env.platform)
    assert f'data-asset="{ready}"' in picker.text and f'data-asset="{processing}"' not in picker.text

    token = await deep_link_jwt(env, ready)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"]
    claims = verify_with_jwks(token, await env.tool_jwks(), audience=env.platform.issuer)
    assert claims["iss"] == env.platform.client_id
    assert claims[LTI + "message_type"] == "LtiDeepLinkingResponse"
    assert claims[LTI + "version"] == "1.3.0"
    assert claims[LTI + "deployment_id"] == env.platform.deployment_id
    assert claims[DL + "data"] == "opaque-platform-data"
    assert claims["exp"] > claims["iat"] and claims["nonce"]
    [item] = claims[DL + "content_items"]
    assert item == {"type": "ltiResourceLink", "title": "lecture-1.mp4", "url": "https://testserver/lti/launch",
                    "custom": {"asset_id": str(ready)}}

    # the link placed in the course launches straight to that asset, for learners too
    env.browser.cookies.clear()
    env.platform.next_message_type = "LtiResourceLinkRequest"
    env.platform.next_user = LEARNER
    env.platform.next_changes = {"lti_custom": item["custom"]}
    page = await launch_via_browser(env.browser, env.platform)
    assert page.status_code == 200 and f'<section class="focus" data-asset="{ready}">' in page.text


async def test_learners_cannot_deep_link(env: LtiEnv):
    env.platform.next_message_type = "LtiDeepLinkingRequest"
    env.platform.next_user = LEARNER
    response = await launch_via_browser(env.browser, env.platform)
    assert response.status_code == 403 and "instructors" in response.json()["error"]["message"]


async def test_only_ready_assets_of_the_tenant_can_be_picked(env: LtiEnv):
    await env.add_asset("ready.mp4")
    processing = await env.add_asset("encoding.mp4", status="processing")
    response = await pick(env, processing)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = await env.browser.post("/lti/deep-link", data={"asset_id": str(processing)})
    assert response.status_code == 401  # the form carries the session: a cookie alone is not enough (CSRF)


async def test_a_resource_link_session_cannot_post_a_deep_link(env: LtiEnv):
    asset_id = await env.add_asset()
    page = await launch_via_browser(env.browser, env.platform)
    token = re.search(r'name="lti_session" value="([^"]+)"', page.text).group(1)
    response = await env.browser.post("/lti/deep-link", data={"lti_session": token, "asset_id": str(asset_id)})
    assert response.status_code == 400 and "deep linking request" in response.json()["error"]["message"]


async def test_a_token_signed_by_the_previous_tool_key_verifies_until_that_key_is_retired(env: LtiEnv):
    asset_id = await env.add_asset()
    old_token = await deep_link_jwt(env, asset_id)
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    rotated = await env.browser.post("/api/v1/lti/keys/rotate", headers=env.admin)
    assert rotated.status_code == 201 and rotated.json()["kid"] != old_kid
    new_token = await deep_link_jwt(env, asset_id)
    assert jwt.get_unverified_header(new_token)["kid"] == rotated.json()["kid"]
    jwks = await env.tool_jwks()
    verify_with_jwks(old_token, jwks, audience=env.platform.issuer)  # still published
    verify_with_jwks(new_token, jwks, audience=env.platform.issuer)
    listed = (await env.browser.get("/api/v1/lti/keys", headers=env.admin)).json()["items"]
    assert [(k["kid"], k["active"]) for k in listed] == [(rotated.json()["kid"], True), (old_kid, False)]

    assert (await env.browser.delete(f"/api/v1/lti/keys/{old_kid}", headers=env.admin)).status_code == 204
    jwks = await env.tool_jwks()
    assert old_kid not in {k["kid"] for k in jwks["keys"]}
    try:
        verify_with_jwks(old_token, jwks, audience=env.platform.issuer)
    except LookupError:
        pass
    else:
        raise AssertionError("a retired key must not verify")
    verify_with_jwks(new_token, jwks, audience=env.platform.issuer)
