"""LTI Dynamic Registration 1.0: an admin hands the platform a tenant's registration URL; the platform opens it
with ``openid_configuration`` (and ``registration_token``); we read the platform's configuration, register the
tool at its ``registration_endpoint``, store the platform registration and tell the platform window to close."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit
from uuid import UUID

import httpx
import msgspec
from litestar import Request, get
from litestar.response import Template

from mediasvc_lti import claims as c
from mediasvc_lti import keys, registrations, tokens
from mediasvc_lti.registrations import PlatformCreate
from mediasvc_lti.runtime import LtiRuntime
from mediasvc_lti import openapi
from mediasvc.plugin import BadRequest, ServiceUnavailable, Unauthorized, ValidationFailed

URL_TTL_SECONDS = 7 * 24 * 3600
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"


class RegistrationUrl(msgspec.Struct):
    url: str
    expires_in: int


def registration_url(lti: LtiRuntime, tenant_id: UUID) -> RegistrationUrl:
    token = tokens.sign_token(lti.secret, tokens.REGISTRATION, tenant_id.hex, URL_TTL_SECONDS)
    return RegistrationUrl(url=f"{lti.base_url}/lti/register?{urlencode({'tenant': token})}",
                           expires_in=URL_TTL_SECONDS)


def tool_configuration(lti: LtiRuntime) -> dict[str, Any]:
    """The client registration request body (LTI Dynamic Registration §3.5)."""
    return {
        "application_type": "web", "response_types": ["id_token"], "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": lti.login_url, "redirect_uris": [lti.launch_url], "client_name": "mediasvc",
        "jwks_uri": lti.jwks_url, "token_endpoint_auth_method": "private_key_jwt", "scope": "",
        TOOL_CONFIGURATION: {
            "domain": urlsplit(lti.base_url).netloc, "target_link_uri": lti.launch_url,
            "claims": ["iss", "sub", "name", "given_name", "family_name", "email"],
            "messages": [{"type": c.DEEP_LINKING_REQUEST, "target_link_uri": lti.launch_url,
                          "label": "Add media"}],
        },
    }


async def _call(lti: LtiRuntime, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=lti.lti.http_timeout_seconds, follow_redirects=False) as client:
            response = await client.request(method, url, **kwargs)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ServiceUnavailable(f"The platform's {what} failed", details={"url": url,
                                                                          "reason": type(exc).__name__}) from exc
    if not isinstance(body, dict):
        raise BadRequest(f"The platform's {what} is not a JSON object")
    return body


def _platform_from(openid_url: str, config: dict[str, Any], client: dict[str, Any]) -> PlatformCreate:
    issuer = config.get("issuer")
    if not isinstance(issuer, str) or not openid_url.startswith(issuer):
        raise BadRequest("The platform's issuer does not match its openid_configuration URL",
                         details={"issuer": issuer})
    deployment = (client.get(TOOL_CONFIGURATION) or {}).get("deployment_id")
    client_id = client.get("client_id")
    if not isinstance(client_id, str) or not isinstance(deployment, str):
        raise BadRequest("The platform's registration answer lacks client_id or deployment_id")
    return PlatformCreate(
        issuer=issuer, client_id=client_id, deployment_ids=[deployment],
        auth_login_url=str(config.get("authorization_endpoint") or ""), jwks_url=str(config.get("jwks_uri") or ""),
        auth_token_url=str(config.get("token_endpoint") or ""),
        name=str((config.get(PLATFORM_CONFIGURATION) or {}).get("product_family_code") or ""))


def _check_platform_url(lti: LtiRuntime, name: str, url: str) -> None:
    try:
        registrations.check_url(name, url, allow_insecure=lti.lti.allow_insecure_urls)
    except ValidationFailed as exc:
        raise BadRequest(exc.message, details=exc.details) from exc


@get("/register", name="lti_register", opt=openapi.REGISTER)
async def register(request: Request[Any, Any, Any], lti: LtiRuntime) -> Template:
    """Registration initiation, opened by the platform in a window or iframe."""
    tenant_hex = tokens.verify_token(lti.secret, tokens.REGISTRATION, request.query_params.get("tenant") or "")
    if tenant_hex is None:
        raise Unauthorized("This registration URL is invalid or has expired: ask for a new one")
    openid_url = request.query_params.get("openid_configuration") or ""
    _check_platform_url(lti, "openid_configuration", openid_url)
    registration_token = request.query_params.get("registration_token")
    config = await _call(lti, "GET", openid_url, "openid configuration")
    endpoint = config.get("registration_endpoint")
    if not isinstance(endpoint, str):
        raise BadRequest("The platform's configuration has no registration_endpoint")
    _check_platform_url(lti, "registration_endpoint", endpoint)
    headers = {"authorization": f"Bearer {registration_token}"} if registration_token else {}
    client = await _call(lti, "POST", endpoint, "client registration", json=tool_configuration(lti),
                         headers=headers)
    data = _platform_from(openid_url, config, client)
    tenant_id = UUID(hex=tenant_hex)
    try:
        registrations.check_platform(data, allow_insecure=lti.lti.allow_insecure_urls)
    except ValidationFailed as exc:  # the platform's data, not the caller's: a bad request from the platform
        raise BadRequest(f"The platform's configuration is unusable: {exc.message}", details=exc.details) from exc
    row = await registrations.create_platform(tenant_id, data)
    await keys.ensure_key(tenant_id, lti.secret)
    return Template(template_name="lti/registered.html", context={"platform": row},
                    headers={"Cache-Control": "no-store"})
