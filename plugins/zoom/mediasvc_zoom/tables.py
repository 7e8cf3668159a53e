"""The plugin's own tables (Piccolo app ``zoom``; migrations in ``piccolo_migrations/``)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, ForeignKey, Integer, OnDelete, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from mediasvc.plugin import Tenant, bind_tables

SESSION_STATUSES = ("scheduled", "live", "ended", "cancelled")


class LiveSession(Table, tablename="zoom_live_sessions"):
    """A scheduled meeting on Zoom (glossary: LiveSession)."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=False, index=True)
    name = Varchar(length=200)
    agenda = Text(default="")
    scheduled_start = Timestamptz()
    scheduled_end = Timestamptz()
    timezone = Varchar(length=64, default="UTC")
    host = Varchar(length=200, default="")  # the Zoom user the meeting belongs to ("me": the app's account owner)
    lti_context_id = Text(null=True, default=None, index=True)
    zoom_meeting_id = Varchar(length=32, default="", index=True)
    zoom_uuid = Varchar(length=100, default="")
    join_url = Text(default="")
    start_url = Text(default="")
    status = Varchar(length=20, default="scheduled")  # scheduled live ended cancelled
    started_at = Timestamptz(null=True, default=None)  # from meeting.started
    ended_at = Timestamptz(null=True, default=None)  # from meeting.ended
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class WebhookEvent(Table, tablename="zoom_webhook_events"):
    """A verified Zoom webhook as received; ``dedupe_key`` makes Zoom's retries no-ops."""

    id = UUID(primary_key=True)
    dedupe_key = Varchar(length=400, unique=True)
    event = Varchar(length=100)
    zoom_meeting_id = Varchar(length=32, default="", index=True)
    live_session = ForeignKey(references=LiveSession, on_delete=OnDelete.cascade, null=True, default=None,
                              index=True)
    event_ts = Timestamptz(null=True, default=None)  # when Zoom says it happened
    payload = JSONB(default={})
    received_at = Timestamptz(default=TimestamptzNow())
    processed_at = Timestamptz(null=True, default=None)


class ParticipantInterval(Table, tablename="zoom_participant_intervals"):
    """One merged presence interval of one participant (derived from the webhook events; rewritten on each)."""

    id = UUID(primary_key=True)
    live_session = ForeignKey(references=LiveSession, on_delete=OnDelete.cascade, null=False, index=True)
    participant_key = Varchar(length=300)  # email, Zoom user id, participant_uuid or per-meeting user id
    name = Varchar(length=200, default="")
    email = Varchar(length=320, default="")
    joined_at = Timestamptz()
    left_at = Timestamptz(null=True, default=None)  # None: still in the meeting
    position = Integer(default=0)  # order of the participant's intervals
    matched_user_id = Varchar(length=200, null=True, default=None)  # an LTI user matched by email
    matched_user_name = Varchar(length=200, null=True, default=None)


ZOOM_TABLES: list[type[Table]] = [LiveSession, WebhookEvent, ParticipantInterval]


def bind_to_core_engine() -> None:
    """Use the engine the core tables use (the app's or the worker's pool): one engine per app."""
    bind_tables(Tenant._meta.db, ZOOM_TABLES)
