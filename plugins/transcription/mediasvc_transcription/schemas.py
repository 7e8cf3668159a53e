"""msgspec structs for the transcription API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

Language = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$", description="ISO 639 code")]
ModelName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                                        description="an engine's model name, e.g. tiny.en or base")]


class Segment(msgspec.Struct):
    start: float
    end: float
    text: str
    confidence: float | None = None


class Caption(msgspec.Struct):
    name: str  # en.vtt
    format: Literal["vtt", "srt"]
    language: str
    url: str  # signed, expiring (the /media/serve URL of the rendition)


class TranscriptOut(msgspec.Struct):
    status: Literal["ready"]
    language: str
    text: str
    duration_seconds: float | None
    confidence: float | None
    engine: str
    model: str
    segments: list[Segment]
    created_at: datetime
    transcript_url: str  # the transcript JSON in storage, signed
    asset_id: UUID | None = None
    session_id: UUID | None = None
    captions: list[Caption] = []


class TranscriptionState(msgspec.Struct):
    """202: no transcript yet, but one is being made."""

    status: Literal["queued", "running", "waiting_for_chunks", "session_active"]
    asset_id: UUID | None = None
    session_id: UUID | None = None
    job_id: UUID | None = None
    progress: float | None = None
    chunks: int | None = None
    chunks_transcribed: int | None = None


class TranscribeRequest(msgspec.Struct, forbid_unknown_fields=True):
    language: Language | None = None  # empty: the settings' language, or detected
    model: ModelName | None = None  # empty: the settings' model


class TranscribeAccepted(msgspec.Struct):
    asset_id: UUID
    job_id: UUID  # the transcribe step's processing job (GET /api/v1/assets/{id}/status)
    job_ids: list[UUID]  # every step queued (audio first when the asset has no audio rendition yet)


class BatchTranscribeRequest(msgspec.Struct, forbid_unknown_fields=True):
    asset_ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=100)]
    language: Language | None = None
    model: ModelName | None = None


class ItemError(msgspec.Struct):
    code: str
    message: str


class BatchItem(msgspec.Struct):
    asset_id: str
    status: Literal["queued", "error"]
    job_id: UUID | None = None
    error: ItemError | None = None


class BatchTranscribeResult(msgspec.Struct):
    queued: int
    failed: int
    items: list[BatchItem]
