"""Participants to users: through the LTI plugin's users (by email) when it is installed."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

log = logging.getLogger("mediasvc.zoom")

try:  # the LTI plugin is optional: without it participants stay identified by their Zoom id or email
    import mediasvc_lti.users as lti_users
except ImportError:  # pragma: no cover - depends on the installation
    lti_users = None


async def match_user(tenant_id: UUID, email: str) -> tuple[str | None, str | None]:
    """``(user id, name)`` of the tenant's LTI user with this email, else ``(None, None)``."""
    if lti_users is None or not email:
        return None, None
    try:
        user: Any = await lti_users.find_user(tenant_id, email=email)
    except Exception:  # an optional integration failing must not stop attendance: log it, match nothing
        log.exception("LTI user lookup failed for a Zoom participant")
        return None, None
    if user is None:
        return None, None
    return str(user.id), (getattr(user, "name", None) or None)
