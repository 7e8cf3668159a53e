"""Zoom webhook payloads → what the plugin needs: the meeting, dedupe keys, presence events. Pure functions."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from mediasvc_zoom.attendance import PresenceEvent

URL_VALIDATION = "endpoint.url_validation"
MEETING_STARTED = "meeting.started"
MEETING_ENDED = "meeting.ended"
PARTICIPANT_JOINED = "meeting.participant_joined"
PARTICIPANT_LEFT = "meeting.participant_left"
# Waiting-room events are not attendance: someone waiting is not in the meeting (stored, never counted).
WAITING_ROOM_EVENTS = frozenset({
    "meeting.participant_joined_waiting_room", "meeting.participant_left_waiting_room",
    "meeting.participant_admitted", "meeting.participant_put_in_waiting_room",
})
PRESENCE_EVENTS = {PARTICIPANT_JOINED: "join", PARTICIPANT_LEFT: "leave"}
HANDLED_EVENTS = frozenset({MEETING_STARTED, MEETING_ENDED, *PRESENCE_EVENTS, *WAITING_ROOM_EVENTS})


def meeting_object(body: dict[str, Any]) -> dict[str, Any]:
    obj = (body.get("payload") or {}).get("object") or {}
    return obj if isinstance(obj, dict) else {}


def meeting_id(body: dict[str, Any]) -> str:
    """Zoom's numeric meeting id as text ('' when the event has none)."""
    value = meeting_object(body).get("id")
    return str(value) if value not in (None, "") else ""


def participant(body: dict[str, Any]) -> dict[str, Any]:
    value = meeting_object(body).get("participant") or {}
    return value if isinstance(value, dict) else {}


def parse_time(value: Any) -> datetime | None:
    """Zoom's ISO 8601 times ('2026-11-25T10:00:00Z'); None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def event_time(body: dict[str, Any]) -> datetime | None:
    """When it happened: the participant's join/leave time, the meeting's start/end time, else ``event_ts``."""
    event = body.get("event", "")
    person = participant(body)
    obj = meeting_object(body)
    candidates = {
        PARTICIPANT_JOINED: person.get("join_time"),
        PARTICIPANT_LEFT: person.get("leave_time"),
        MEETING_STARTED: obj.get("start_time"),
        MEETING_ENDED: obj.get("end_time"),
    }
    at = parse_time(candidates.get(event)) or parse_time(person.get("date_time"))
    if at is None and isinstance(body.get("event_ts"), int | float):
        at = datetime.fromtimestamp(body["event_ts"] / 1000, tz=timezone.utc)
    return at


def participant_key(person: dict[str, Any]) -> str:
    """Who: an email merges a person's devices; else the Zoom user id, participant_uuid, per-meeting user id."""
    email = str(person.get("email") or "").strip().lower()
    for prefix, value in (("email", email), ("zoom", person.get("id")), ("uuid", person.get("participant_uuid")),
                          ("user", person.get("user_id")), ("name", person.get("user_name"))):
        if value not in (None, ""):
            return f"{prefix}:{value}"
    return "unknown"


def device_key(person: dict[str, Any]) -> str:
    """Which connection: the participant_uuid, else the per-meeting user id."""
    return str(person.get("participant_uuid") or person.get("user_id") or participant_key(person))


def dedupe_key(body: dict[str, Any]) -> str:
    """Zoom retries a delivery with the same body: key by the event, meeting, participant and timestamp."""
    event = str(body.get("event", ""))
    obj = meeting_object(body)
    meeting = str(obj.get("uuid") or obj.get("id") or "")
    at = event_time(body)
    stamp = at.isoformat() if at else str(body.get("event_ts", ""))
    if event in PRESENCE_EVENTS or event in WAITING_ROOM_EVENTS:
        return f"{event}|{meeting}|{device_key(participant(body))}|{stamp}"[:400]
    return f"{event}|{meeting}|{stamp}"[:400]


def presence_event(body: dict[str, Any]) -> PresenceEvent | None:
    """A join or leave; None for any other event or one without a time."""
    kind = PRESENCE_EVENTS.get(body.get("event", ""))
    at = event_time(body)
    if kind is None or at is None:
        return None
    person = participant(body)
    return PresenceEvent(kind=kind, at=at, participant_key=participant_key(person),  # type: ignore[arg-type]
                         device=device_key(person), name=str(person.get("user_name") or ""),
                         email=str(person.get("email") or "").strip())
