"""LiveSession rows: lookups scoped to a tenant, and the API's view of a row."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from mediasvc_zoom import schemas
from mediasvc_zoom.tables import LiveSession
from mediasvc.plugin import NotFound


def session_out(row: dict[str, Any]) -> schemas.LiveSession:
    minutes = int((row["scheduled_end"] - row["scheduled_start"]).total_seconds() // 60)
    return schemas.LiveSession(
        id=row["id"], name=row["name"], agenda=row["agenda"], scheduled_start=row["scheduled_start"],
        scheduled_end=row["scheduled_end"], duration_minutes=minutes, timezone=row["timezone"], host=row["host"],
        lti_context_id=row["lti_context_id"], zoom_meeting_id=row["zoom_meeting_id"], zoom_uuid=row["zoom_uuid"],
        join_url=row["join_url"], start_url=row["start_url"], status=row["status"], started_at=row["started_at"],
        ended_at=row["ended_at"], created_at=row["created_at"], updated_at=row["updated_at"],
    )


async def get_session_row(session_id: UUID, tenant_id: UUID | None) -> dict[str, Any]:
    """The session, or a 404; ``tenant_id`` None (an operator of every tenant) sees every tenant's."""
    where = [LiveSession.id == session_id]
    if tenant_id is not None:
        where.append(LiveSession.tenant == tenant_id)
    row = await LiveSession.select().where(*where).first()
    if row is None:
        raise NotFound(f"Live session {session_id} not found", details={"live_session_id": str(session_id)})
    return row


async def session_for_meeting(meeting_id: str) -> dict[str, Any] | None:
    """The live session a Zoom meeting id belongs to (the newest, should a meeting id ever be reused)."""
    if not meeting_id:
        return None
    return await LiveSession.select(LiveSession.id, LiveSession.tenant, LiveSession.status).where(
        LiveSession.zoom_meeting_id == meeting_id).order_by(LiveSession.created_at, ascending=False).first()
