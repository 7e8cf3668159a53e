"""Forged, stale and replayed launches are refused with a clear error in the one envelope (400/401/403), and the
login initiation checks what the platform sends."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tests.lti_platform import (
    LtiEnv,
    SigningKey,
    env_fixture,  # noqa: F401 - the env fixture
    launch_via_browser,
    lti_app_fixture,  # noqa: F401 - the lti_app fixture
    start_login,
)


async def forged_launch(env: LtiEnv, *, sign: dict[str, Any] | None = None, **changes: Any) -> httpx.Response:
    """A real login initiation, then an id_token the test signs itself with ``changes``."""
    auth = await start_login(env.browser, env.platform)
    token = env.platform.sign(env.platform.claims(auth["nonce"], **changes), **(sign or {}))
    return await env.browser.post("/lti/launch", data={"id_token": token, "state": auth["state"]})


def assert_refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words.lower() in error["message"].lower(), error
    assert error["request_id"]


async def test_a_well_formed_forged_launch_is_accepted_as_baseline(env: LtiEnv):
    assert (await forged_launch(env)).status_code == 200  # the forging helper itself makes valid launches


async def test_a_bad_signature_is_refused(env: LtiEnv):
    impostor = SigningKey(kid=env.platform.key.kid, private=SigningKey.generate().private)  # same kid, other key
    assert_refused(await forged_launch(env, sign={"key": impostor}), 401, "signature does not verify")


async def test_an_unknown_kid_is_refused_after_exactly_one_refetch(env: LtiEnv):
    assert (await forged_launch(env)).status_code == 200
    assert env.platform.jwks_requests == 1  # fetched once, then cached
    assert_refused(await forged_launch(env, sign={"key": SigningKey.generate()}), 401, "unknown key id")
    assert env.platform.jwks_requests == 2


async def test_a_platform_key_rotation_is_picked_up_by_one_refetch(env: LtiEnv):
    assert (await forged_launch(env)).status_code == 200
    new_key = SigningKey.generate()
    env.platform.published.append(new_key)
    env.platform.key = new_key
    assert (await launch_via_browser(env.browser, env.platform)).status_code == 200
    assert env.platform.jwks_requests == 2


async def test_alg_none_is_refused(env: LtiEnv):
    assert_refused(await forged_launch(env, sign={"alg": "none"}), 401, "alg 'none' is refused")


async def test_hs256_signed_with_the_public_key_is_refused(env: LtiEnv):
    public_pem = env.platform.key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert_refused(await forged_launch(env, sign={"alg": "HS256", "secret": public_pem}), 401, "alg 'HS256' is refused")


async def test_other_rsa_algorithms_are_refused(env: LtiEnv):
    assert_refused(await forged_launch(env, sign={"alg": "RS512"}), 401, "only RS256")


@pytest.mark.parametrize(("changes", "words"), [
    ({"aud": "someone-else"}, "aud does not name"),
    ({"aud": ["someone-else", "another"]}, "aud does not name"),
    ({"iss": "https://evil.example"}, "iss is not the registered"),
])
async def test_tokens_for_another_audience_or_from_another_issuer_are_refused(env: LtiEnv, changes, words):
    assert_refused(await forged_launch(env, **changes), 401, words)


async def test_several_audiences_need_azp_naming_us(env: LtiEnv):
    audiences = [env.platform.client_id, "other-tool"]
    assert_refused(await forged_launch(env, aud=audiences), 401, "no azp")
    assert_refused(await forged_launch(env, aud=audiences, azp="other-tool"), 401, "azp is not")
    assert (await forged_launch(env, aud=audiences, azp=env.platform.client_id)).status_code == 200


async def test_expired_and_future_tokens_are_refused(env: LtiEnv):
    now = int(time.time())
    assert_refused(await forged_launch(env, iat=now - 900, exp=now - 600), 401, "expired")
    assert_refused(await forged_launch(env, iat=now + 600, exp=now + 900), 401, "not valid yet")
    assert (await forged_launch(env, exp=now - 5)).status_code == 200  # within the small leeway


async def test_a_replayed_launch_is_refused(env: LtiEnv):
    auth = await start_login(env.browser, env.platform)
    fields = {"id_token": env.platform.sign(env.platform.claims(auth["nonce"])), "state": auth["state"]}
    assert (await env.browser.post("/lti/launch", data=fields)).status_code == 200
    assert_refused(await env.browser.post("/lti/launch", data=fields), 401, "already used")
    fresh = await start_login(env.browser, env.platform)  # the old token with a new login's state
    assert_refused(await env.browser.post("/lti/launch", data={**fields, "state": fresh["state"]}), 401, "nonce")


async def test_a_state_this_tool_did_not_issue_is_refused(env: LtiEnv):
    auth = await start_login(env.browser, env.platform)
    token = env.platform.sign(env.platform.claims(auth["nonce"]))
    tampered = auth["state"][:-3] + ("AAA" if not auth["state"].endswith("AAA") else "BBB")
    assert_refused(await env.browser.post("/lti/launch", data={"id_token": token, "state": tampered}), 401,
            "not issued by this tool")


async def test_a_state_from_another_browser_is_refused(env: LtiEnv):
    mine = await start_login(env.browser, env.platform)  # this browser holds the cookie for its own login
    async with httpx.AsyncClient(transport=env.browser._transport, base_url="https://testserver") as other:
        theirs = await start_login(other, env.platform)
    token = env.platform.sign(env.platform.claims(theirs["nonce"]))
    assert_refused(await env.browser.post("/lti/launch", data={"id_token": token, "state": theirs["state"]}), 401,
            "does not match the login this browser started")
    assert mine["state"] != theirs["state"]


async def test_a_token_minted_for_another_login_is_refused(env: LtiEnv):
    auth = await start_login(env.browser, env.platform)
    token = env.platform.sign(env.platform.claims("some-other-nonce"))
    assert_refused(await env.browser.post("/lti/launch", data={"id_token": token, "state": auth["state"]}), 401, "nonce")


async def test_an_unknown_deployment_is_forbidden(env: LtiEnv):
    assert_refused(await forged_launch(env, lti_deployment_id="deployment-x"), 403, "unknown deployment")


@pytest.mark.parametrize(("changes", "words"), [
    ({"lti_message_type": "LtiSubmissionReviewRequest"}, "unsupported lti message type"),
    ({"lti_message_type": None}, "unsupported lti message type"),
    ({"lti_version": "1.1"}, "unsupported lti version"),
    ({"lti_resource_link": None}, "without a resource_link"),
    ({"nonce": None}, "lacks the required claim 'nonce'"),
    ({"lti_roles": "Instructor"}, "roles claim must be a list"),
])
async def test_wrong_lti_claims_are_bad_requests(env: LtiEnv, changes, words):
    assert_refused(await forged_launch(env, **changes), 400, words)


async def test_a_deep_linking_request_needs_its_return_url(env: LtiEnv):
    settings = {"accept_types": ["ltiResourceLink"]}  # no deep_link_return_url
    assert_refused(await forged_launch(env, message_type="LtiDeepLinkingRequest", dl_deep_linking_settings=settings),
            400, "deep_link_return_url")


async def test_anonymous_launches_are_forbidden(env: LtiEnv):
    assert_refused(await forged_launch(env, sub=None), 403, "anonymous")


async def test_malformed_launch_posts_are_bad_requests(env: LtiEnv):
    auth = await start_login(env.browser, env.platform)
    assert_refused(await env.browser.post("/lti/launch", data={"state": auth["state"]}), 400, "id_token and state")
    assert_refused(await env.browser.post("/lti/launch", data={"id_token": "not-a-jwt", "state": auth["state"]}), 400,
            "not a well-formed jwt")
    assert_refused(await env.browser.post("/lti/launch", data={"error": "login_required", "state": auth["state"]}), 401,
            "platform refused the login")


async def test_a_browser_gets_an_html_error_page(env: LtiEnv):
    auth = await start_login(env.browser, env.platform)
    token = env.platform.sign(env.platform.claims(auth["nonce"]), alg="none")
    response = await env.browser.post("/lti/launch", data={"id_token": token, "state": auth["state"]},
                                      headers={"accept": "text/html"})
    assert response.status_code == 401 and response.headers["content-type"].startswith("text/html")
    assert "only RS256 is accepted" in response.text


async def test_an_unreachable_platform_jwks_is_a_503_not_a_500(env: LtiEnv):
    auth = await start_login(env.browser, env.platform)
    token = env.platform.sign(env.platform.claims(auth["nonce"]))
    env.platform.close()  # the platform's JWKS host goes away
    assert_refused(await env.browser.post("/lti/launch", data={"id_token": token, "state": auth["state"]}), 503,
            "jwks could not be fetched")


@pytest.mark.parametrize(("changes", "status", "words"), [
    ({"iss": "https://unknown.example"}, 400, "no platform is registered"),
    ({"client_id": "other-client"}, 400, "no platform is registered"),
    ({"login_hint": ""}, 400, "missing login_hint"),
    ({"target_link_uri": "https://evil.example/lti/launch"}, 400, "not a url of this tool"),
    ({"lti_deployment_id": "deployment-x"}, 403, "unknown deployment"),
])
async def test_login_initiation_checks_what_the_platform_sends(env: LtiEnv, changes, status, words):
    assert_refused(await env.browser.get("/lti/login", params=env.platform.login_params(**changes)), status, words)


async def test_login_initiation_by_post_redirects_with_the_oidc_parameters(env: LtiEnv):
    response = await env.browser.post("/lti/login", data=env.platform.login_params())
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    params = dict(location.params)
    assert {k: params[k] for k in ("scope", "response_type", "response_mode", "prompt", "client_id",
                                   "redirect_uri", "login_hint", "lti_message_hint")} == {
        "scope": "openid", "response_type": "id_token", "response_mode": "form_post", "prompt": "none",
        "client_id": env.platform.client_id, "redirect_uri": "https://testserver/lti/launch", "login_hint": "instr-1",
        "lti_message_hint": "hint-123"}
    assert params["state"] and params["nonce"]


async def test_odd_but_signed_claim_values_do_not_break_the_launch(env: LtiEnv):
    response = await forged_launch(env, name=42, given_name=["x"], email="a" * 400 + "@example.edu",
                                   lti_context={"id": 7, "title": "t" * 900})
    assert response.status_code == 200, response.text


async def test_a_session_field_sent_as_a_file_is_no_session(env: LtiEnv):
    response = await env.browser.post("/lti/deep-link", files={"lti_session": ("x.txt", b"abc")},
                                      data={"asset_id": "x"})
    assert response.status_code == 401
