"""The payloads of the recording-session API (``/api/v1/sessions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from mediasvc.text_rules import CheckedText

MAX_CHUNKS = 100_000
SessionStatus = Literal["active", "completed", "failed"]
# segments: each chunk a standalone file (overlapping); stream: MediaRecorder timeslice blobs of one stream
SessionMode = Literal["segments", "stream"]
ClientId = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]
ShortText = Annotated[str, Meta(max_length=200)]
DeviceText = Annotated[str, Meta(max_length=512)]


class ClientDevice(msgspec.Struct, kw_only=True):
    """A device as the browser's ``navigator.mediaDevices.enumerateDevices()`` reports it."""

    deviceId: DeviceText = ""  # the browser's field names
    kind: Literal["videoinput", "audioinput", "audiooutput"]
    label: DeviceText = ""
    groupId: DeviceText = ""


class SessionCreate(CheckedText, forbid_unknown_fields=True):
    id: ClientId | None = None  # the client's own id for the session (same as client_id)
    client_id: ClientId | None = None
    interview_id: ShortText = ""
    user_id: ShortText = ""
    profile: str = "video_response"
    mode: SessionMode = "segments"
    expected_chunks: Annotated[int, Meta(ge=1, le=MAX_CHUNKS)] | None = None
    metadata: dict[str, Any] = {}
    devices: Annotated[list[ClientDevice], Meta(max_length=64)] = []


class ChunkFields(CheckedText):
    """The text fields of a chunk upload (multipart); unknown fields are ignored."""

    sequence_index: Annotated[int, Meta(ge=0, lt=MAX_CHUNKS)]
    total_chunks: Annotated[int, Meta(ge=1, le=MAX_CHUNKS)] | None = None
    overlap_seconds: Annotated[float, Meta(ge=0, le=3600)] = 0.0
    question_id: ShortText | None = None
    session_id: str | None = None
    replace: bool = False


class ChunkOut(msgspec.Struct):
    id: UUID
    session_id: UUID
    sequence_index: int
    size_bytes: int
    sha256: str
    content_type: str
    duration_seconds: float | None
    overlap_seconds: float
    question_id: str | None
    created_at: datetime


class SessionOut(msgspec.Struct):
    id: UUID
    client_id: str | None
    interview_id: str
    user_id: str
    profile: str
    mode: str
    status: str
    error: str | None  # why the session failed (status "failed"), else null
    join: str | None  # the join into one asset: "queued", "done", "failed"; null when none was asked for
    expected_chunks: int | None
    chunks_received: int
    bytes_received: int
    duration_seconds: float  # probed durations minus the overlaps
    missing_chunks: int
    devices: list[ClientDevice]
    metadata: dict[str, Any]
    asset_id: UUID | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class SessionDetail(SessionOut):
    chunks: list[ChunkOut] = []


class Range(msgspec.Struct):
    start: int
    end: int


class InconsistentChunk(msgspec.Struct):
    sequence_index: int
    duration_seconds: float | None
    reason: str  # no_duration, overlap_exceeds_duration, duration_differs_from_median
    message: str
    median_seconds: float | None


class Gaps(msgspec.Struct):
    session_id: UUID
    expected_chunks: int
    chunks_received: int
    missing: list[Range]
    missing_count: int
    inconsistent: list[InconsistentChunk]
    complete: bool  # nothing missing and nothing inconsistent


class SessionPage(msgspec.Struct):
    items: list[SessionOut]
    next_cursor: str | None = None
