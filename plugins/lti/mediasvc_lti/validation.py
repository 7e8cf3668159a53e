"""Verifying a launch's id_token (IMS Security Framework §5.1.3, LTI 1.3 §5.3): RS256 only, the platform's key
by kid, exact iss, aud/azp, exp/iat with a small leeway, this login's nonce, and the LTI claims."""

from __future__ import annotations

from typing import Any

import jwt
import msgspec

from mediasvc_lti import claims as c
from mediasvc_lti.platform_jwks import PlatformKeys
from mediasvc.plugin import BadRequest, Forbidden, Unauthorized


class LaunchClaims(msgspec.Struct):
    """What a verified launch says, in our words."""

    issuer: str
    sub: str
    deployment_id: str
    message_type: str
    roles: list[str]
    role: str  # instructor | learner
    email: str
    name: str
    context: dict[str, Any] | None
    resource_link: dict[str, Any] | None
    deep_linking_settings: dict[str, Any] | None
    custom: dict[str, Any]
    target_link_uri: str


_JWT_ERRORS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "id_token has expired (exp)"),
    (jwt.ImmatureSignatureError, "id_token is not valid yet (iat or nbf in the future)"),
    (jwt.InvalidAudienceError, "id_token aud does not name this tool's client_id"),
    (jwt.InvalidIssuerError, "id_token iss is not the registered platform issuer"),
]


async def verify_id_token(token: str, platform: dict[str, Any], expected_nonce: str, keys: PlatformKeys,
                          leeway_seconds: int) -> LaunchClaims:
    """Raise BadRequest (malformed), Unauthorized (not authentic, not for us, stale, replayed) or Forbidden
    (authentic but not allowed here); return the claims otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise BadRequest(f"id_token is not a well-formed JWT: {exc}") from exc
    alg = header.get("alg")
    if alg != "RS256":
        raise Unauthorized(f"id_token alg {alg!r} is refused: only RS256 is accepted", details={"alg": alg})
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("id_token header has no kid: the platform's signing key cannot be chosen")
    key = await keys.key_for(platform["jwks_url"], kid)
    payload = _decode(token, key, platform, leeway_seconds)
    _check_azp(payload, platform["client_id"])
    if payload.get("nonce") != expected_nonce:
        raise Unauthorized("id_token nonce does not match the one issued for this login (replayed or mixed up)")
    return _lti_claims(payload, platform)


def _decode(token: str, key: Any, platform: dict[str, Any], leeway_seconds: int) -> dict[str, Any]:
    try:
        return jwt.decode(token, key, algorithms=["RS256"], audience=platform["client_id"],
                          issuer=platform["issuer"], leeway=leeway_seconds,
                          options={"require": ["iss", "aud", "exp", "iat", "nonce"]})
    except jwt.MissingRequiredClaimError as exc:
        raise BadRequest(f"id_token lacks the required claim {exc.claim!r}", details={"claim": exc.claim}) from exc
    except jwt.InvalidSignatureError as exc:  # a DecodeError subclass: catch it first
        raise Unauthorized("id_token signature does not verify with the platform's key") from exc
    except jwt.DecodeError as exc:
        raise BadRequest(f"id_token cannot be decoded: {exc}") from exc
    except jwt.InvalidTokenError as exc:
        for error_type, message in _JWT_ERRORS:
            if isinstance(exc, error_type):
                raise Unauthorized(message) from exc
        raise Unauthorized(f"id_token refused: {exc}") from exc


def _check_azp(payload: dict[str, Any], client_id: str) -> None:
    aud, azp = payload.get("aud"), payload.get("azp")
    several = isinstance(aud, list) and len(aud) > 1
    if several and azp is None:
        raise Unauthorized("id_token has several audiences but no azp claim")
    if azp is not None and azp != client_id:
        raise Unauthorized("id_token azp is not this tool's client_id")


def _lti_claims(payload: dict[str, Any], platform: dict[str, Any]) -> LaunchClaims:
    version = payload.get(c.VERSION)
    if version != c.LTI_VERSION:
        raise BadRequest(f"Unsupported LTI version {version!r}: this tool speaks {c.LTI_VERSION}")
    message_type = payload.get(c.MESSAGE_TYPE)
    if message_type not in c.MESSAGE_TYPES:
        raise BadRequest(f"Unsupported LTI message type {message_type!r}: expected one of {list(c.MESSAGE_TYPES)}")
    deployment_id = payload.get(c.DEPLOYMENT_ID)
    if not isinstance(deployment_id, str) or deployment_id not in platform["deployment_ids"]:
        raise Forbidden(f"Unknown deployment {deployment_id!r} for this platform: add it to the registration",
                        details={"deployment_id": deployment_id})
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Forbidden("Anonymous launches (no sub) are not supported")
    resource_link = _object(payload, c.RESOURCE_LINK)
    deep_linking = _object(payload, c.DEEP_LINKING_SETTINGS)
    if message_type == c.RESOURCE_LINK_REQUEST and not (resource_link and resource_link.get("id")):
        raise BadRequest("LtiResourceLinkRequest without a resource_link id")
    if message_type == c.DEEP_LINKING_REQUEST and not (deep_linking and deep_linking.get("deep_link_return_url")):
        raise BadRequest("LtiDeepLinkingRequest without deep_linking_settings.deep_link_return_url")
    roles = payload.get(c.ROLES) or []
    if not isinstance(roles, list):
        raise BadRequest("The roles claim must be a list")
    name = _text(payload.get("name")) or " ".join(
        filter(None, [_text(payload.get("given_name")), _text(payload.get("family_name"))]))
    return LaunchClaims(
        issuer=payload["iss"], sub=sub, deployment_id=deployment_id, message_type=message_type,
        roles=[r for r in roles if isinstance(r, str)], role=c.map_role(roles),
        email=_text(payload.get("email")), name=name,
        context=_object(payload, c.CONTEXT), resource_link=resource_link, deep_linking_settings=deep_linking,
        custom=_object(payload, c.CUSTOM) or {}, target_link_uri=_text(payload.get(c.TARGET_LINK_URI)),
    )


def _object(payload: dict[str, Any], claim: str) -> dict[str, Any] | None:
    value = payload.get(claim)
    if value is not None and not isinstance(value, dict):
        raise BadRequest(f"The claim {claim} must be a JSON object")
    return value


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
