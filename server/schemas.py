"""msgspec structs for every API payload. Request payloads subclass ``CheckedText``: decoding one checks all its
text for control characters (``mediasvc.text_rules``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

import msgspec

from mediasvc.text_rules import CheckedText

T = TypeVar("T")

AssetStatus = Literal["pending", "uploading", "uploaded", "processing", "ready", "failed", "deleted"]


class AssetCreate(CheckedText, forbid_unknown_fields=True):
    profile: str
    original_name: str
    content_type: str = ""
    size_bytes: int | None = None
    owner: str = ""
    metadata: dict[str, Any] = {}


class Asset(msgspec.Struct):
    id: UUID
    profile: str
    kind: str
    owner: str
    original_name: str
    content_type: str
    size_bytes: int
    sha256: str
    status: AssetStatus
    metadata: dict[str, Any]
    error: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class HealthCheck(msgspec.Struct):
    ok: bool
    latency_ms: float
    detail: str = ""


class Health(msgspec.Struct):
    status: Literal["ok", "unavailable"]
    checks: dict[str, HealthCheck]


class Stats(msgspec.Struct):
    uploads_total: int
    uploads_last_hour: int
    assets_by_status: dict[str, int]
    active_sessions: int
    queue: dict[str, int]
    storage_bytes: int


class BucketStats(msgspec.Struct):
    bucket: str
    profile: str
    objects: int
    bytes: int


class StorageStats(msgspec.Struct):
    total_bytes: int
    total_objects: int
    by_bucket: list[BucketStats]


class PluginOut(msgspec.Struct):
    name: str
    version: str
    hooks: list[str]
    source: str
    blocked: bool


class StepStatus(msgspec.Struct):
    step: str
    status: Literal["queued", "running", "succeeded", "failed", "skipped"]
    progress: float
    attempts: int
    error: str | None
    started_at: datetime | None
    completed_at: datetime | None
    eta_seconds: float | None = None  # seconds left, from elapsed time and progress; None when unknown


class AssetProcessingStatus(msgspec.Struct):
    asset_id: UUID
    status: AssetStatus
    error: str | None
    progress: float  # weighted by each step's expected cost (``mediasvc.progress``); never goes backwards
    steps: list[StepStatus]
    eta_seconds: float | None = None  # seconds until every step is done; None when unknown


class ReprocessRequest(CheckedText, forbid_unknown_fields=True):
    steps: list[str] | None = None  # None: every step of the profile


class RenditionOut(msgspec.Struct):
    kind: str
    name: str
    content_type: str
    size_bytes: int
    width: int | None
    height: int | None
    duration_seconds: float | None
    bitrate: int | None
    metadata: dict[str, Any]
    url: str | None = None  # signed, expiring, on the CDN base URL when one is set; HLS plays via /playback


class PlaybackTokenRequest(CheckedText, forbid_unknown_fields=True):
    subject: str  # who will watch: a user id, a session id…
    ttl_seconds: int | None = None  # default playback.default_ttl_seconds, at most playback.max_ttl_seconds
    ip: str | None = None  # bind the token to the viewer's IP address


class PlaybackToken(msgspec.Struct):
    token: str
    asset_id: UUID
    subject: str
    expires_at: datetime
    hls_url: str
    playback_url: str  # GET it (no API key) for the full playback info


class CaptionTrack(msgspec.Struct):
    language: str
    format: str  # vtt, srt
    url: str


class PlaybackVariant(msgspec.Struct):
    name: str
    width: int | None
    height: int | None
    bandwidth: int | None


class PlaybackInfo(msgspec.Struct):
    asset_id: UUID
    kind: str
    status: AssetStatus
    duration_seconds: float | None
    hls_url: str | None  # token-bound; set once the first HLS rung is stored, even while ``processing``
    mp4_url: str | None
    thumbnail_url: str | None
    poster_url: str | None
    original_url: str | None
    captions: list[CaptionTrack]
    variants: list[PlaybackVariant]
    token_expires_at: datetime | None
    # the HLS rungs stored so far, lowest first: the ladder grows while the asset is processing
    ready_renditions: list[str] = []
    # the original itself (Range requests) when a browser plays its container and codecs: playable from upload on
    progressive_url: str | None = None


class AssetDetail(Asset):
    renditions: list[RenditionOut] = []
    steps: list[StepStatus] = []
