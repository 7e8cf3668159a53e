"""What the LTI routes read from their forms and query strings, for the OpenAPI document.

The handlers read ``request.form()`` / query parameters themselves (an LTI platform posts whatever it posts; a
missing field is a 400 naming it), so Litestar cannot see these fields: each route passes its fragment as
``opt={"openapi": ...}``, which the core merges into the document (docs/plugins.md, "OpenAPI")."""

from __future__ import annotations

from typing import Any

FORM = "application/x-www-form-urlencoded"
_TEXT = {"type": "string"}
_UUID = {"type": "string", "format": "uuid"}
SESSION_FIELD = "lti_session"  # mediasvc_lti.session.FORM_FIELD


def _form(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, "content": {FORM: {"schema": {"type": "object", "properties": properties,
                                                            "required": required}}}}


def _query(name: str, *, required: bool = False, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": _TEXT, "description": description}


_LOGIN_FIELDS = {
    "iss": "The platform's issuer", "login_hint": "Opaque, returned to the platform",
    "target_link_uri": "A URL of this tool", "lti_message_hint": "Opaque, returned to the platform",
    "client_id": "The tool's client id on that platform", "lti_deployment_id": "The deployment",
}
_LOGIN_REQUIRED = ["iss", "login_hint", "target_link_uri"]
_REDIRECT = {302: {"description": "To the platform's authorization endpoint (OIDC, form_post)"}}

LOGIN = {"openapi": {
    "errors": [400, 403, 404],
    "responses": _REDIRECT,
    "by_method": {
        "GET": {"parameters": [_query(k, required=k in _LOGIN_REQUIRED, description=v)
                               for k, v in _LOGIN_FIELDS.items()]},
        "POST": {"requestBody": _form({k: {**_TEXT, "description": v} for k, v in _LOGIN_FIELDS.items()},
                                      _LOGIN_REQUIRED)},
    },
}}
LAUNCH = {"openapi": {
    "errors": [400, 401, 403, 404, 503],
    "requestBody": _form({"id_token": {**_TEXT, "description": "The platform's signed JWT"},
                          "state": {**_TEXT, "description": "The state issued at login"},
                          "error": {**_TEXT, "description": "Sent instead when the platform refused"},
                          "error_description": _TEXT}, ["id_token", "state"]),
}}
DEEP_LINK = {"openapi": {
    "errors": [400, 401, 403, 404],
    "requestBody": _form({SESSION_FIELD: _TEXT, "asset_id": _UUID}, [SESSION_FIELD, "asset_id"]),
}}
COURSE = {"openapi": {
    "errors": [401],
    "parameters": [_query(SESSION_FIELD, description="The LTI session, where third-party cookies are blocked")],
}}
COURSE_ASSETS = {"openapi": {
    "errors": [400, 401, 403, 404],
    "requestBody": _form({SESSION_FIELD: _TEXT, "asset_id": _UUID,
                          "action": {"type": "string", "enum": ["add", "remove"]}},
                         [SESSION_FIELD, "asset_id", "action"]),
}}
REGISTER = {"openapi": {
    "errors": [400, 401, 422, 503],
    "parameters": [_query("tenant", required=True, description="The signed registration token"),
                   _query("openid_configuration", required=True, description="The platform's configuration URL"),
                   _query("registration_token", description="The platform's bearer token for registering")],
}}
CONFLICT = {"openapi": {"errors": [409]}}
REGISTRATION = {"openapi": {"errors": [400, 409, 503]}}
