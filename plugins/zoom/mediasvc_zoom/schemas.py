"""Payloads of the live-sessions API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from mediasvc_zoom.attendance import ParticipantAttendance

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Minutes = Annotated[int, Meta(ge=1, le=24 * 60)]
Agenda = Annotated[str, Meta(max_length=2000)]
ContextId = Annotated[str, Meta(min_length=1, max_length=500)]
TimezoneName = Annotated[str, Meta(min_length=1, max_length=64)]
Status = Literal["scheduled", "live", "ended", "cancelled"]


class LiveSessionCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    start_time: datetime  # with a UTC offset
    duration_minutes: Minutes
    timezone: TimezoneName = "UTC"
    agenda: Agenda = ""
    host: Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._@+-]+$")] = "me"
    lti_context_id: ContextId | None = None


class LiveSessionUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    start_time: datetime | None = None
    duration_minutes: Minutes | None = None
    timezone: TimezoneName | None = None
    agenda: Agenda | None = None
    lti_context_id: ContextId | None = None


class LiveSession(msgspec.Struct):
    id: UUID
    name: str
    agenda: str
    scheduled_start: datetime
    scheduled_end: datetime
    duration_minutes: int
    timezone: str
    host: str
    lti_context_id: str | None
    zoom_meeting_id: str
    zoom_uuid: str
    join_url: str
    start_url: str
    status: Status
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime


class LiveSessionPage(msgspec.Struct):
    items: list[LiveSession]
    next_cursor: str | None = None


class AttendanceReport(msgspec.Struct):
    live_session_id: UUID
    name: str
    status: str
    scheduled_start: datetime
    scheduled_end: datetime
    started_at: datetime | None
    ended_at: datetime | None
    generated_at: datetime
    late_after_minutes: float
    early_leave_minutes: float
    present_now: int
    participants: list[ParticipantAttendance]
