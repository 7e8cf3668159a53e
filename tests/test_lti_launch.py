"""LTI 1.3 launches end to end: the OIDC flow through a test platform on loopback, roles, the course page, the
LTI session, and the state fallback for browsers that block third-party cookies."""

from __future__ import annotations

import re

import httpx
import pytest
from mediasvc_lti import claims
from mediasvc_lti.tables import Context, User

from tests.lti_platform import (
    ADMIN_ROLE,
    INSTRUCTOR_ROLE,
    LEARNER,
    LEARNER_ROLE,
    LtiEnv,
    env_fixture,  # noqa: F401 - the env fixture
    form_fields,
    launch_via_browser,
    lti_app_fixture,  # noqa: F401 - the lti_app fixture
    lti_settings,
    lti_tenant,
    serve_lti_app,
)
from tests.lti_platform import (
    User as PlatformUser,
)


def set_cookies(response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


async def test_instructor_launch_lands_on_course_page_with_instructor_extras(env: LtiEnv):
    ready = await env.add_asset("intro.mp4")
    login = await env.browser.get("/lti/login", params=env.platform.login_params())
    state_cookie = next(v for k, v in set_cookies(login).items() if k.startswith("lti_state_"))
    for attribute in ("SameSite=none", "Secure", "HttpOnly", "Path=/lti/launch"):
        assert attribute.lower() in state_cookie.lower()

    response = await launch_via_browser(env.browser, env.platform)
    assert response.status_code == 200, response.text
    assert 'data-page="course"' in response.text and "Biology 101" in response.text
    assert 'data-role="instructor"' in response.text
    assert 'id="instructor-tools"' in response.text and f'data-available="{ready}"' in response.text
    session = set_cookies(response)["mediasvc_lti_session"].lower()
    assert "samesite=none" in session and "secure" in session and "httponly" in session

    user = await User.select().where(User.tenant == env.tenant_id).first()
    assert (user["sub"], user["email"], user["role"]) == ("instr-1", "ada@example.edu", "instructor")
    course = await Context.select().where(Context.tenant == env.tenant_id).first()
    assert (course["context_id"], course["title"]) == ("course-42", "Biology 101")


async def test_learner_sees_only_the_course_ready_media_and_cannot_change_it(env: LtiEnv):
    ready = await env.add_asset("week1.mp4")
    processing = await env.add_asset("week2.mp4", status="processing")
    outside = await env.add_asset("not-in-course.mp4")
    page = await launch_via_browser(env.browser, env.platform)  # the instructor places two assets in the course
    _, fields = form_fields(page.text.split('id="instructor-tools"')[1])
    for asset_id in (ready, processing):
        added = await env.browser.post("/lti/course/assets", data={"lti_session": fields["lti_session"],
                                                                   "asset_id": str(asset_id), "action": "add"})
        assert added.status_code == 200, added.text

    env.browser.cookies.clear()
    env.platform.next_user = LEARNER
    response = await launch_via_browser(env.browser, env.platform)
    assert response.status_code == 200, response.text
    assert 'data-role="learner"' in response.text and 'id="instructor-tools"' not in response.text
    assert f'data-asset="{ready}"' in response.text
    assert f'data-asset="{processing}"' not in response.text and str(outside) not in response.text
    link = re.search(rf'data-asset="{ready}">.*?href="([^"]+)"', response.text, re.DOTALL).group(1)
    assert "/media/serve/" in link and "sig=" in link

    assert "/lti/course/assets" not in response.text  # no instructor forms
    learner_token = response.cookies.get("mediasvc_lti_session")
    refused = await env.browser.post("/lti/course/assets", data={"lti_session": learner_token,
                                                                 "asset_id": str(outside), "action": "add"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


async def test_the_session_cookie_or_token_reopens_the_course_page(env: LtiEnv):
    response = await launch_via_browser(env.browser, env.platform)
    token = response.cookies.get("mediasvc_lti_session")
    again = await env.browser.get("/lti/course")
    assert again.status_code == 200 and 'data-role="instructor"' in again.text

    env.browser.cookies.clear()
    refused = await env.browser.get("/lti/course")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    with_token = await env.browser.get("/lti/course", params={"lti_session": token})
    assert with_token.status_code == 200
    forged = await env.browser.get("/lti/course", params={"lti_session": token[:-2] + "xx"})
    assert forged.status_code == 401


async def test_a_launch_carrying_an_asset_id_opens_that_asset(env: LtiEnv):
    asset_id = await env.add_asset("lab.mp4")
    env.platform.next_changes = {"lti_custom": {"asset_id": str(asset_id)}}
    response = await launch_via_browser(env.browser, env.platform)
    assert response.status_code == 200
    assert f'<section class="focus" data-asset="{asset_id}">' in response.text and "<video controls" in response.text


async def test_without_third_party_cookies_the_signed_server_side_state_is_enough(env: LtiEnv):
    login = await env.browser.get("/lti/login", params=env.platform.login_params())
    env.browser.cookies.clear()  # the browser dropped the state cookie (third-party cookies blocked)
    async with httpx.AsyncClient() as outside:
        auth = await outside.get(login.headers["location"])
    _, fields = form_fields(auth.text)
    response = await env.browser.post("/lti/launch", data=fields)
    assert response.status_code == 200, response.text
    assert 'name="lti_session"' in response.text  # the pages carry the session where no cookie will come back


async def test_a_required_state_cookie_refuses_cookieless_browsers(database_url, queue_name, tmp_path):
    settings = lti_settings(database_url, queue_name, tmp_path, **{"plugins.lti.require_state_cookie": True})
    async with serve_lti_app(settings) as app, lti_tenant(app) as env:
        login = await env.browser.get("/lti/login", params=env.platform.login_params())
        env.browser.cookies.clear()
        async with httpx.AsyncClient() as outside:
            auth = await outside.get(login.headers["location"])
        _, fields = form_fields(auth.text)
        response = await env.browser.post("/lti/launch", data=fields)
        assert response.status_code == 401
        assert "state cookie" in response.json()["error"]["message"]


@pytest.mark.parametrize(("roles", "expected"), [
    ([INSTRUCTOR_ROLE], claims.INSTRUCTOR),
    ([LEARNER_ROLE], claims.LEARNER),
    ([ADMIN_ROLE], claims.INSTRUCTOR),
    (["http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator"], claims.INSTRUCTOR),
    (["http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"], claims.INSTRUCTOR),
    (["Instructor"], claims.INSTRUCTOR),
    ([LEARNER_ROLE, INSTRUCTOR_ROLE], claims.INSTRUCTOR),
    (["http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor"], claims.LEARNER),
    ([], claims.LEARNER),
])
def test_platform_roles_map_to_instructor_or_learner(roles, expected):
    assert claims.map_role(roles) == expected


async def test_an_administrator_launch_gets_instructor_pages(env: LtiEnv):
    env.platform.next_user = PlatformUser("admin-9", "Root", "root@example.edu", (ADMIN_ROLE,))
    response = await launch_via_browser(env.browser, env.platform)
    assert response.status_code == 200 and 'data-role="instructor"' in response.text
