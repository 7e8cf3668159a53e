"""The plugin's routes: the admin API (API key guard) and the public LTI endpoints under /lti."""

from __future__ import annotations

from typing import Any

from litestar import Response, Router, get
from litestar.di import Provide

from mediasvc_lti import keys
from mediasvc_lti.api import LtiAdminController
from mediasvc_lti.course import change_course_assets, course_page
from mediasvc_lti.deep_linking import deep_link
from mediasvc_lti.dynamic_registration import register
from mediasvc_lti.launch import launch
from mediasvc_lti.login import login
from mediasvc_lti.runtime import LtiRuntime
from mediasvc.plugin import Settings, api_key_guard


@get("/jwks", name="lti_jwks")
async def jwks() -> Response[dict[str, Any]]:
    """The tool's public keys: every key not retired (the active one and those rotated out)."""
    return Response(await keys.published_jwks(), headers={"Cache-Control": "public, max-age=60"})


def lti_routes(settings: Settings) -> list[Any]:
    runtime = LtiRuntime.from_settings(settings)
    dependencies = {"lti": Provide(lambda: runtime, sync_to_thread=False, use_cache=True)}
    public = Router(path="/lti", route_handlers=[login, launch, jwks, course_page, change_course_assets, deep_link,
                                                    register],
                    dependencies=dependencies, tags=["lti"])
    admin = Router(path="/", route_handlers=[LtiAdminController], guards=[api_key_guard],
                   dependencies=dependencies)
    return [public, admin]
