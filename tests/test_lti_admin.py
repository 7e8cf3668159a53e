"""The LTI admin API (API key, tenant-scoped): platform registrations, tool keys, the tool's JWKS, and
``find_user`` (the interface other plugins use to match people)."""

from __future__ import annotations

import httpx
import jwt
import pytest
from mediasvc_lti.registrations import PlatformCreate, check_platform
from mediasvc_lti.users import find_user

from mediasvc.errors import ValidationFailed
from tests.lti_platform import (
    LEARNER,
    LtiEnv,
    env_fixture,  # noqa: F401 - the env fixture
    launch_via_browser,
    lti_app_fixture,  # noqa: F401 - the lti_app fixture
    lti_tenant,
)


async def test_registrations_are_created_listed_and_deleted_per_tenant(env: LtiEnv, lti_app):
    created = env.registration
    assert created["issuer"] == env.platform.issuer and created["deployment_ids"] == ["deployment-1"]
    assert created["tool"] == {"login_url": "https://testserver/lti/login",
                               "launch_url": "https://testserver/lti/launch",
                               "jwks_url": "https://testserver/lti/jwks",
                               "deep_linking_url": "https://testserver/lti/launch"}
    listed = await env.browser.get("/api/v1/lti/registrations", headers=env.admin)
    assert [r["id"] for r in listed.json()["items"]] == [created["id"]]

    async with lti_tenant(lti_app) as other:  # another tenant sees nothing of it
        assert all(r["id"] != created["id"] for r in
                   (await other.browser.get("/api/v1/lti/registrations", headers=other.admin)).json()["items"])
        missing = await other.browser.delete(f"/api/v1/lti/registrations/{created['id']}", headers=other.admin)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    duplicate = await env.browser.post("/api/v1/lti/registrations", json=env.platform.registration(),
                                       headers=env.admin)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "conflict"

    deleted = await env.browser.delete(f"/api/v1/lti/registrations/{created['id']}", headers=env.admin)
    assert deleted.status_code == 204
    gone = await env.browser.get(f"/api/v1/lti/registrations/{created['id']}", headers=env.admin)
    assert gone.status_code == 404
    login = await env.browser.get("/lti/login", params=env.platform.login_params())
    assert login.status_code == 400  # the platform can no longer launch


@pytest.mark.parametrize(("changes", "status", "field"), [
    ({"jwks_url": "ftp://example.com/jwks"}, 422, "jwks_url"),
    ({"auth_login_url": "not a url"}, 422, "auth_login_url"),
    ({"deployment_ids": []}, 422, "deployment_ids"),
    ({"issuer": " "}, 422, "issuer"),
    ({"surprise": 1}, 422, None),
])
async def test_bad_registrations_are_refused_naming_the_field(env: LtiEnv, changes, status, field):
    body = env.platform.registration(client_id="another-client", **changes)
    response = await env.browser.post("/api/v1/lti/registrations", json=body, headers=env.admin)
    assert response.status_code == status, response.text
    if field:
        assert response.json()["error"]["details"]["field"] == field


def test_platform_urls_must_be_https_unless_insecure_urls_are_allowed():
    data = PlatformCreate(issuer="https://lms.example", client_id="c", deployment_ids=["d"],
                          auth_login_url="http://lms.example/auth", jwks_url="https://lms.example/jwks")
    with pytest.raises(ValidationFailed, match="auth_login_url must be an https:// URL"):
        check_platform(data, allow_insecure=False)
    check_platform(data, allow_insecure=True)


async def test_the_admin_api_needs_an_api_key(env: LtiEnv):
    for method, path in [("GET", "/api/v1/lti/registrations"), ("POST", "/api/v1/lti/keys/rotate"),
                         ("GET", "/api/v1/lti/keys")]:
        response = await env.browser.request(method, path)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


async def test_the_active_key_cannot_be_retired_and_unknown_keys_are_404(env: LtiEnv):
    [active] = (await env.browser.get("/api/v1/lti/keys", headers=env.admin)).json()["items"]
    response = await env.browser.delete(f"/api/v1/lti/keys/{active['kid']}", headers=env.admin)
    assert response.status_code == 409 and "rotate first" in response.json()["error"]["message"]
    response = await env.browser.delete("/api/v1/lti/keys/nope", headers=env.admin)
    assert response.status_code == 404


async def test_the_tool_jwks_publishes_public_keys_only(env: LtiEnv):
    jwks = await env.tool_jwks()
    [active] = (await env.browser.get("/api/v1/lti/keys", headers=env.admin)).json()["items"]
    key = next(k for k in jwks["keys"] if k["kid"] == active["kid"])
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in key and "p" not in key  # no private parts
    jwt.PyJWK(key)  # a usable RSA public key


async def test_find_user_matches_by_email_or_sub_within_the_tenant(env: LtiEnv, lti_app):
    assert (await launch_via_browser(env.browser, env.platform)).status_code == 200
    env.browser.cookies.clear()
    env.platform.next_user = LEARNER
    assert (await launch_via_browser(env.browser, env.platform)).status_code == 200

    by_email = await find_user(env.tenant_id, email="LIN@Example.EDU ")
    assert by_email is not None and (by_email.sub, by_email.role, by_email.name) == ("learner-1", "learner",
                                                                                     "Lin Learner")
    by_sub = await find_user(env.tenant_id, lti_sub="instr-1")
    assert by_sub is not None and by_sub.email == "ada@example.edu" and by_sub.role == "instructor"
    assert by_sub.issuer == env.platform.issuer and by_sub.tenant_id == env.tenant_id
    assert await find_user(env.tenant_id, email="ada@example.edu", lti_sub="learner-1") is None
    assert await find_user(env.tenant_id, email="nobody@example.edu") is None
    assert await find_user(env.tenant_id) is None
    async with lti_tenant(lti_app) as other:
        assert await find_user(other.tenant_id, email="lin@example.edu") is None


async def test_dynamic_registration_registers_the_platform_and_it_can_launch(lti_app):
    from tests.lti_platform import Platform

    async with lti_tenant(lti_app) as env:
        platform = Platform(client_id="dyn-client", deployment_id="dyn-deployment")
        try:
            created = await env.browser.post("/api/v1/lti/registrations/dynamic", headers=env.admin)
            assert created.status_code == 201
            url = httpx.URL(created.json()["url"])
            assert url.path == "/lti/register"
            page = await env.browser.get("/lti/register", params={
                **dict(url.params), "openid_configuration": f"{platform.issuer}/.well-known/openid-configuration",
                "registration_token": "reg-token-1"})
            assert page.status_code == 200, page.text
            assert "org.imsglobal.lti.close" in page.text

            [sent] = platform.registration_requests
            assert sent["authorization"] == "Bearer reg-token-1"
            assert sent["body"]["initiate_login_uri"] == "https://testserver/lti/login"
            assert sent["body"]["redirect_uris"] == ["https://testserver/lti/launch"]
            assert sent["body"]["jwks_uri"] == "https://testserver/lti/jwks"
            listed = (await env.browser.get("/api/v1/lti/registrations", headers=env.admin)).json()["items"]
            mine = next(r for r in listed if r["issuer"] == platform.issuer)
            assert (mine["client_id"], mine["deployment_ids"], mine["auth_login_url"]) == (
                "dyn-client", ["dyn-deployment"], platform.auth_url)
            launched = await launch_via_browser(env.browser, platform)
            assert launched.status_code == 200 and 'data-page="course"' in launched.text
        finally:
            platform.close()


async def test_dynamic_registration_needs_a_valid_tenant_url(env: LtiEnv):
    response = await env.browser.get("/lti/register", params={"tenant": "forged.123.abc",
                                                              "openid_configuration": "https://x.example/c"})
    assert response.status_code == 401 and "registration url" in response.json()["error"]["message"].lower()
    created = (await env.browser.post("/api/v1/lti/registrations/dynamic", headers=env.admin)).json()
    params = dict(httpx.URL(created["url"]).params)
    response = await env.browser.get("/lti/register", params={**params, "openid_configuration": "ftp://x/c"})
    assert response.status_code == 400
