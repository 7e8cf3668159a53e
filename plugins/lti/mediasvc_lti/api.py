"""The admin API under /api/v1/lti (API key, tenant-scoped): platform registrations and the tool's keys."""

from __future__ import annotations

from uuid import UUID

import msgspec
from litestar import Controller, delete, get, post
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from mediasvc_lti import keys, registrations
from mediasvc_lti.dynamic_registration import RegistrationUrl, registration_url
from mediasvc_lti.registrations import PlatformCreate, PlatformOut, ToolUrls
from mediasvc_lti.runtime import LtiRuntime
from mediasvc_lti import openapi
from mediasvc.plugin import PrincipalDep


class PlatformList(msgspec.Struct):
    items: list[PlatformOut]


class KeyList(msgspec.Struct):
    items: list[keys.ToolKeyInfo]


def tool_urls(lti: LtiRuntime) -> ToolUrls:
    return ToolUrls(login_url=lti.login_url, launch_url=lti.launch_url, jwks_url=lti.jwks_url,
                    deep_linking_url=lti.launch_url)


class LtiAdminController(Controller):
    path = "/api/v1/lti"
    tags = ["lti"]

    @post("/registrations", status_code=HTTP_201_CREATED, opt=openapi.REGISTRATION)
    async def create_registration(self, data: PlatformCreate, principal: PrincipalDep,
                                  lti: LtiRuntime) -> PlatformOut:
        """Register a platform (LMS). The answer includes the tool URLs to enter on the platform's side."""
        registrations.check_platform(data, allow_insecure=lti.lti.allow_insecure_urls)
        row = await registrations.create_platform(principal.tenant_id, data)
        await keys.ensure_key(principal.tenant_id, lti.secret)
        return registrations.to_platform_out(row, tool_urls(lti))

    @get("/registrations")
    async def list_registrations(self, principal: PrincipalDep) -> PlatformList:
        rows = await registrations.list_platforms(principal.tenant_id)
        return PlatformList(items=[registrations.to_platform_out(row) for row in rows])

    @get("/registrations/{registration_id:uuid}")
    async def get_registration(self, registration_id: UUID, principal: PrincipalDep, lti: LtiRuntime) -> PlatformOut:
        row = await registrations.get_platform(principal.tenant_id, registration_id)
        return registrations.to_platform_out(row, tool_urls(lti))

    @delete("/registrations/{registration_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_registration(self, registration_id: UUID, principal: PrincipalDep) -> None:
        """Remove a platform; its courses and launches go with it (users stay, matched by issuer and sub)."""
        await registrations.delete_platform(principal.tenant_id, registration_id)

    @post("/registrations/dynamic", status_code=HTTP_201_CREATED)
    async def dynamic_registration_url(self, principal: PrincipalDep, lti: LtiRuntime) -> RegistrationUrl:
        """A registration URL for this tenant to paste into a platform that supports LTI Dynamic Registration."""
        return registration_url(lti, principal.tenant_id)

    @get("/keys")
    async def list_keys(self, principal: PrincipalDep) -> KeyList:
        return KeyList(items=await keys.list_keys(principal.tenant_id))

    @post("/keys/rotate", status_code=HTTP_201_CREATED)
    async def rotate_key(self, principal: PrincipalDep, lti: LtiRuntime) -> keys.ToolKeyInfo:
        """A new active signing key; the previous one stays in /lti/jwks until retired."""
        return await keys.rotate_key(principal.tenant_id, lti.secret)

    @delete("/keys/{kid:str}", status_code=HTTP_204_NO_CONTENT, opt=openapi.CONFLICT)
    async def retire_key(self, kid: str, principal: PrincipalDep) -> None:
        """Stop publishing an inactive key (409 for the active one)."""
        await keys.retire_key(principal.tenant_id, kid)
