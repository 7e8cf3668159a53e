"""The ``zoom.process_event`` job: a stored webhook → the LiveSession's status, intervals and event.

The intervals are recomputed from every join/leave stored for the session (so events arriving out of order or
late still give the right answer), written with the session's new state and an ``attendance.updated`` event in one
transaction, under a row lock on the session (two jobs for one session never interleave).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from mediasvc_zoom import zoom_events as ze
from mediasvc_zoom.attendance import Presence, presences
from mediasvc_zoom.matching import match_user
from mediasvc_zoom.tables import LiveSession, ParticipantInterval, WebhookEvent, bind_to_core_engine
from mediasvc.plugin import emit_event, kick_events

ATTENDANCE_UPDATED = "attendance.updated"


def _status_change(session: dict[str, Any], event: str, at: datetime | None) -> dict[Any, Any]:
    """Column values a meeting.started/ended brings; a cancelled session stays cancelled, an ended one ended."""
    at = at or datetime.now(timezone.utc)
    if session["status"] == "cancelled":
        return {}
    if event == ze.MEETING_STARTED and session["status"] == "scheduled":
        return {LiveSession.status: "live", LiveSession.started_at: session["started_at"] or at}
    if event == ze.MEETING_ENDED:
        return {LiveSession.status: "ended", LiveSession.ended_at: at,
                LiveSession.started_at: session["started_at"] or at}
    return {}


async def _presence_events(session_id: UUID) -> list[Any]:
    rows = await WebhookEvent.select(WebhookEvent.payload).where(
        WebhookEvent.live_session == session_id, WebhookEvent.event.is_in(list(ze.PRESENCE_EVENTS))
    ).output(load_json=True)
    return [e for e in (ze.presence_event(r["payload"]) for r in rows) if e is not None]


async def _write_intervals(session: dict[str, Any], found: list[Presence]) -> None:
    await ParticipantInterval.delete().where(ParticipantInterval.live_session == session["id"])
    rows = []
    for presence in found:
        user_id, user_name = await match_user(session["tenant"], presence.email)
        for position, interval in enumerate(presence.intervals):
            rows.append(ParticipantInterval(
                live_session=session["id"], participant_key=presence.participant_key[:300],
                name=presence.name[:200], email=presence.email[:320], joined_at=interval.start,
                left_at=interval.end, position=position, matched_user_id=user_id, matched_user_name=user_name))
    if rows:
        await ParticipantInterval.insert(*rows)


async def process_event(ctx: dict[str, Any], *, event_id: str) -> dict[str, Any]:
    bind_to_core_engine()
    stored = await WebhookEvent.select().where(WebhookEvent.id == UUID(event_id)).first()
    if stored is None or stored["live_session"] is None:
        return {"skipped": "no such event or no live session"}
    event = stored["event"]
    async with LiveSession._meta.db.transaction():
        locked = await LiveSession.raw("SELECT * FROM zoom_live_sessions WHERE id = {} FOR UPDATE",
                                       stored["live_session"])
        session = locked[0]
        if change := _status_change(session, event, stored["event_ts"]):
            await LiveSession.update({**change, LiveSession.updated_at: datetime.now(timezone.utc)}).where(
                LiveSession.id == session["id"])
            session.update({column._meta.name: value for column, value in change.items()})
        counted = event in ze.PRESENCE_EVENTS or event == ze.MEETING_ENDED
        if counted:
            found = presences(await _presence_events(session["id"]), ended_at=session["ended_at"])
            await _write_intervals(session, found)
            await emit_event(ATTENDANCE_UPDATED, {
                "live_session_id": str(session["id"]), "zoom_meeting_id": session["zoom_meeting_id"],
                "status": session["status"], "trigger": event, "participants": len(found),
                "present_now": sum(1 for p in found if p.intervals and p.intervals[-1].end is None),
            }, tenant_id=session["tenant"])
        await WebhookEvent.update({WebhookEvent.processed_at: datetime.now(timezone.utc)}).where(
            WebhookEvent.id == stored["id"])
    if counted and ctx.get("queue") is not None:
        await kick_events(ctx["queue"])
    return {"event": event, "live_session_id": str(session["id"]), "status": session["status"]}
