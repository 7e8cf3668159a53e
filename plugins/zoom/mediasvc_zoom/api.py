"""``/api/v1/live-sessions``: LiveSessions backed by Zoom meetings, and their attendance reports."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from litestar import Controller, Response, Router, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from mediasvc_zoom import schemas
from mediasvc_zoom.client import client_for, zoom_time
from mediasvc_zoom.reports import build_report, download_headers, report_csv
from mediasvc_zoom.settings import zoom_settings
from mediasvc_zoom.store import get_session_row, session_out
from mediasvc_zoom.tables import LiveSession
from mediasvc.plugin import (
    Conflict, PrincipalDep, ServicesDep, ValidationFailed, api_key_guard, decode_cursor, encode_cursor,
)


def _aware(when: datetime, field: str) -> datetime:
    if when.tzinfo is None:
        raise ValidationFailed(f"{field} needs a UTC offset (e.g. 2026-12-01T09:00:00Z)", details={"field": field})
    return when.astimezone(timezone.utc)


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"Unknown time zone {name!r} (an IANA name such as Europe/Paris)",
                               details={"timezone": name}) from None
    return name


# For the OpenAPI document: these call Zoom (502 when it refuses, 503 without credentials); 409 for a state
# that does not allow the change.
ZOOM_CALL = {"openapi": {"errors": [409, 502, 503]}}


class LiveSessionController(Controller):
    path = "/"
    tags = ["live sessions"]

    @post("/", status_code=HTTP_201_CREATED, opt=ZOOM_CALL,
          summary="Schedule a live session (creates the Zoom meeting)")
    async def create(self, data: JSONBody[schemas.LiveSessionCreate], principal: PrincipalDep,
                     services: ServicesDep) -> schemas.LiveSession:
        start = _aware(data.start_time, "start_time")
        tz = _check_timezone(data.timezone)
        meeting = await client_for(services.host).create_meeting(
            host=data.host, topic=data.name, start_time=start, duration_minutes=data.duration_minutes,
            timezone_name=tz, agenda=data.agenda)
        now = datetime.now(timezone.utc)
        row = LiveSession(id=uuid4(), tenant=principal.tenant_id, name=data.name, agenda=data.agenda,
                          scheduled_start=start, scheduled_end=start + timedelta(minutes=data.duration_minutes),
                          timezone=tz, host=data.host, lti_context_id=data.lti_context_id,
                          zoom_meeting_id=str(meeting.id), zoom_uuid=meeting.uuid, join_url=meeting.join_url,
                          start_url=meeting.start_url, status="scheduled", created_at=now, updated_at=now)
        await LiveSession.insert(row)
        return session_out(await get_session_row(row.id, principal.tenant_id))

    @get("/", summary="List live sessions, newest first")
    async def list_sessions(
        self, principal: PrincipalDep,
        status: FromQuery[schemas.Status | None] = None,
        lti_context_id: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> schemas.LiveSessionPage:
        query = LiveSession.select().where(LiveSession.tenant == principal.tenant_id)
        if status:
            query = query.where(LiveSession.status == status)
        if lti_context_id:
            query = query.where(LiveSession.lti_context_id == lti_context_id)
        if cursor:
            created, last_id = decode_cursor(cursor)
            query = query.where((LiveSession.created_at < created)
                                | ((LiveSession.created_at == created) & (LiveSession.id < last_id)))
        rows = await query.order_by(LiveSession.created_at, LiveSession.id, ascending=False).limit(limit + 1)
        next_cursor = encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit \
            else None
        return schemas.LiveSessionPage(items=[session_out(r) for r in rows[:limit]], next_cursor=next_cursor)

    @get("/{session_id:uuid}", summary="One live session")
    async def get_session(self, session_id: FromPath[UUID], principal: PrincipalDep) -> schemas.LiveSession:
        return session_out(await get_session_row(session_id, principal.tenant_id))

    @patch("/{session_id:uuid}", opt=ZOOM_CALL, summary="Change a scheduled live session (updates the Zoom meeting)")
    async def update(self, session_id: FromPath[UUID], data: JSONBody[schemas.LiveSessionUpdate],
                     principal: PrincipalDep, services: ServicesDep) -> schemas.LiveSession:
        row = await get_session_row(session_id, principal.tenant_id)
        if row["status"] in ("ended", "cancelled"):
            raise Conflict(f"Live session {session_id} is {row['status']}: it can no longer change",
                           details={"status": row["status"]})
        start = _aware(data.start_time, "start_time") if data.start_time else row["scheduled_start"]
        minutes = data.duration_minutes or int((row["scheduled_end"] - row["scheduled_start"]).total_seconds() // 60)
        zoom_fields: dict[str, Any] = {}
        values: dict[Any, Any] = {}
        if data.name is not None:
            zoom_fields["topic"], values[LiveSession.name] = data.name, data.name
        if data.agenda is not None:
            zoom_fields["agenda"], values[LiveSession.agenda] = data.agenda, data.agenda
        if data.timezone is not None:
            zoom_fields["timezone"] = values[LiveSession.timezone] = _check_timezone(data.timezone)
        if data.start_time is not None or data.duration_minutes is not None:
            zoom_fields.update(start_time=zoom_time(start), duration=minutes)
            values.update({LiveSession.scheduled_start: start,
                           LiveSession.scheduled_end: start + timedelta(minutes=minutes)})
        if data.lti_context_id is not None:
            values[LiveSession.lti_context_id] = data.lti_context_id
        if zoom_fields:
            await client_for(services.host).update_meeting(row["zoom_meeting_id"], zoom_fields)
        if values:
            values[LiveSession.updated_at] = datetime.now(timezone.utc)
            await LiveSession.update(values).where(LiveSession.id == session_id)
        return session_out(await get_session_row(session_id, principal.tenant_id))

    @post("/{session_id:uuid}/cancel", status_code=200, opt=ZOOM_CALL,
          summary="Cancel a live session (deletes the Zoom meeting)")
    async def cancel(self, session_id: FromPath[UUID], principal: PrincipalDep,
                     services: ServicesDep) -> schemas.LiveSession:
        row = await get_session_row(session_id, principal.tenant_id)
        if row["status"] == "cancelled":
            return session_out(row)  # idempotent
        if row["status"] == "ended":
            raise Conflict(f"Live session {session_id} has ended: it cannot be cancelled",
                           details={"status": row["status"]})
        await client_for(services.host).delete_meeting(row["zoom_meeting_id"])
        await LiveSession.update({LiveSession.status: "cancelled",
                                  LiveSession.updated_at: datetime.now(timezone.utc)}).where(
            LiveSession.id == session_id)
        return session_out(await get_session_row(session_id, principal.tenant_id))

    @get("/{session_id:uuid}/attendance", summary="Attendance report (JSON, or ?format=csv for a spreadsheet)")
    async def attendance(self, session_id: FromPath[UUID], principal: PrincipalDep, services: ServicesDep,
                         format: FromQuery[Literal["json", "csv"]] = "json") -> Response[Any]:
        row = await get_session_row(session_id, principal.tenant_id)
        report = await build_report(row, zoom_settings(services.host))
        if format == "csv":
            return Response(report_csv(report), media_type="text/csv; charset=utf-8", headers=download_headers(report, "csv"))
        return Response(report)


def live_sessions_router() -> Router:
    return Router(path="/api/v1/live-sessions", guards=[api_key_guard], route_handlers=[LiveSessionController])
