"""Piccolo tables for the core nouns (see the glossary in ARCHITECTURE.md). Changes go through migrations/."""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    UUID,
    BigInt,
    Float,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class Tenant(Table, tablename="tenants"):
    id = UUID(primary_key=True)
    slug = Varchar(length=100, unique=True)
    name = Varchar(length=200)
    created_at = Timestamptz(default=TimestamptzNow())


class ApiKey(Table, tablename="api_keys"):
    """A REST client's key; only its sha256 is stored. ``prefix`` is shown in lists to tell keys apart."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=False)
    name = Varchar(length=200, default="")
    prefix = Varchar(length=16)
    key_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class Asset(Table, tablename="assets"):
    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=False)
    owner = Varchar(length=200, default="", index=True)
    profile = Varchar(length=100)
    kind = Varchar(length=20)  # video, audio, image, document
    original_name = Varchar(length=255, default="")
    content_type = Varchar(length=200, default="application/octet-stream")
    size_bytes = BigInt(default=0)
    sha256 = Varchar(length=64, default="")
    bucket = Varchar(length=100, default="")
    storage_key = Text(default="")
    status = Varchar(length=20, default="pending")  # pending uploading uploaded processing ready failed deleted
    metadata = JSONB(default={})
    error = Text(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    deleted_at = Timestamptz(null=True, default=None)


class Rendition(Table, tablename="renditions"):
    id = UUID(primary_key=True)
    asset = ForeignKey(references=Asset, on_delete=OnDelete.cascade, null=False)
    kind = Varchar(length=40)
    name = Varchar(length=100)
    storage_key = Text()
    content_type = Varchar(length=200)
    size_bytes = BigInt(default=0)
    width = Integer(null=True, default=None)
    height = Integer(null=True, default=None)
    duration_seconds = Float(null=True, default=None)
    bitrate = BigInt(null=True, default=None)
    metadata = JSONB(default={})
    created_at = Timestamptz(default=TimestamptzNow())


class ProcessingJob(Table, tablename="processing_jobs"):
    id = UUID(primary_key=True)
    asset = ForeignKey(references=Asset, on_delete=OnDelete.cascade, null=False)
    step = Varchar(length=100)  # processor name
    status = Varchar(length=20, default="queued")  # queued running succeeded failed skipped
    progress = Float(default=0.0)  # 0-100
    attempts = Integer(default=0)
    error = Text(null=True, default=None)
    queue_key = Varchar(length=200, default="")  # the SAQ job key
    created_at = Timestamptz(default=TimestamptzNow())
    started_at = Timestamptz(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)


class RecordingSession(Table, tablename="recording_sessions"):
    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=False)
    client_id = Varchar(length=200, null=True, default=None)  # a client-chosen id, unique per tenant
    interview_id = Varchar(length=200, default="", index=True)
    user_id = Varchar(length=200, default="", index=True)
    profile = Varchar(length=100, default="video_response")
    expected_chunks = Integer(null=True, default=None)
    status = Varchar(length=20, default="active")  # active completed failed deleted
    mode = Varchar(length=20, default="segments")  # segments (standalone files) or stream (MediaRecorder blobs)
    error = Text(null=True, default=None)  # why the session failed (readable: no paths), when it did
    join_state = Varchar(length=20, null=True, default=None)  # the asset join: queued done failed (null: none)
    devices = JSONB(default=[])
    metadata = JSONB(default={})
    asset = ForeignKey(references=Asset, on_delete=OnDelete.set_null, null=True)  # joined recording
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    completed_at = Timestamptz(null=True, default=None)


class Chunk(Table, tablename="chunks"):
    id = UUID(primary_key=True)
    session = ForeignKey(references=RecordingSession, on_delete=OnDelete.cascade, null=False)
    sequence_index = Integer()
    storage_key = Text()
    content_type = Varchar(length=200, default="application/octet-stream")
    size_bytes = BigInt(default=0)
    sha256 = Varchar(length=64)
    duration_seconds = Float(null=True, default=None)
    overlap_seconds = Float(default=0.0)
    question_id = Varchar(length=200, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class Upload(Table, tablename="uploads"):
    """A transfer in progress (tus or presigned); becomes an Asset when complete."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=False)
    method = Varchar(length=20)  # tus, presigned
    profile = Varchar(length=100)
    status = Varchar(length=20, default="uploading")  # uploading complete aborted expired failed
    original_name = Varchar(length=255, default="")
    content_type = Varchar(length=200, default="")
    offset = BigInt(default=0)
    length = BigInt(null=True, default=None)
    storage_key = Text(default="")
    metadata = JSONB(default={})
    asset = ForeignKey(references=Asset, on_delete=OnDelete.set_null, null=True)
    expires_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class Transcript(Table, tablename="transcripts"):
    id = UUID(primary_key=True)
    asset = ForeignKey(references=Asset, on_delete=OnDelete.cascade, null=True)
    session = ForeignKey(references=RecordingSession, on_delete=OnDelete.cascade, null=True)
    language = Varchar(length=20, default="")
    text = Text(default="")
    segments = JSONB(default=[])
    model = Varchar(length=100, default="")
    duration_seconds = Float(null=True, default=None)
    confidence = Float(null=True, default=None)
    storage_key = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())


class Event(Table, tablename="events"):
    """The outbox: written in the same transaction as the change it describes."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=True)
    type = Varchar(length=100)
    payload = JSONB(default={})
    created_at = Timestamptz(default=TimestamptzNow())
    dispatched_at = Timestamptz(null=True, default=None)  # set once a delivery row exists for every sink


class EventDelivery(Table, tablename="event_deliveries"):
    id = UUID(primary_key=True)
    event = ForeignKey(references=Event, on_delete=OnDelete.cascade, null=False)
    sink = Varchar(length=200)
    status = Varchar(length=20, default="pending")  # pending delivered failed
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(null=True, default=TimestamptzNow())
    last_error = Text(null=True, default=None)
    response_status = Integer(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


CORE_TABLES: list[type[Table]] = [
    Tenant,
    ApiKey,
    Asset,
    Rendition,
    ProcessingJob,
    RecordingSession,
    Chunk,
    Upload,
    Transcript,
    Event,
    EventDelivery,
]


class Operator(Table, tablename="operators"):
    """A person who signs in to the dashboard. ``tenant`` null: sees every tenant. Role ``admin`` or ``viewer``."""

    id = UUID(primary_key=True)
    email = Varchar(length=254, unique=True)
    password_hash = Text()
    role = Varchar(length=20, default="viewer")
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=True)
    created_at = Timestamptz(default=TimestamptzNow())
    last_login_at = Timestamptz(null=True, default=None)
    disabled_at = Timestamptz(null=True, default=None)


class OperatorSession(Table, tablename="operator_sessions"):
    """A dashboard sign-in: the cookie holds a random token, only its sha256 is stored; ``csrf_token`` guards forms."""

    id = UUID(primary_key=True)
    token_hash = Varchar(length=64, unique=True)
    operator = ForeignKey(references=Operator, on_delete=OnDelete.cascade, null=False, index=True)
    csrf_token = Varchar(length=64)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()


CORE_TABLES.extend([Operator, OperatorSession])
