"""LTI 1.3 claim names and the mapping of platform roles to ours."""

from __future__ import annotations

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"

MESSAGE_TYPE = LTI + "message_type"
VERSION = LTI + "version"
DEPLOYMENT_ID = LTI + "deployment_id"
TARGET_LINK_URI = LTI + "target_link_uri"
RESOURCE_LINK = LTI + "resource_link"
ROLES = LTI + "roles"
CONTEXT = LTI + "context"
CUSTOM = LTI + "custom"
DEEP_LINKING_SETTINGS = DL + "deep_linking_settings"
CONTENT_ITEMS = DL + "content_items"
DL_DATA = DL + "data"

RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"
DEEP_LINKING_RESPONSE = "LtiDeepLinkingResponse"
MESSAGE_TYPES = (RESOURCE_LINK_REQUEST, DEEP_LINKING_REQUEST)
LTI_VERSION = "1.3.0"

INSTRUCTOR, LEARNER = "instructor", "learner"
_INSTRUCTOR_NAMES = {"Instructor", "Administrator"}


def _role_names(role: str) -> set[str]:
    """``…/membership#Instructor`` → {Instructor}; a sub-role ``…/membership/Instructor#TeachingAssistant`` →
    {TeachingAssistant, Instructor}; a bare ``Instructor`` (deprecated short form) → {Instructor}."""
    path, _, fragment = role.rpartition("#")
    if not path:
        return {role.rsplit("/", 1)[-1]}
    return {fragment, path.rsplit("/", 1)[-1]}


def map_role(roles: list[str]) -> str:
    """Instructor or Administrator (context, institution or system role) → instructor; anything else, no roles
    included, → learner (the least privilege)."""
    for role in roles:
        if isinstance(role, str) and _role_names(role) & _INSTRUCTOR_NAMES:
            return INSTRUCTOR
    return LEARNER
