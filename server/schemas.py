"""msgspec structs for every API payload."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

import msgspec

T = TypeVar("T")

AssetStatus = Literal["pending", "uploading", "uploaded", "processing", "ready", "failed", "deleted"]


class AssetCreate(msgspec.Struct, forbid_unknown_fields=True):
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


class AssetProcessingStatus(msgspec.Struct):
    asset_id: UUID
    status: AssetStatus
    error: str | None
    progress: float  # mean over the steps that run
    steps: list[StepStatus]


class ReprocessRequest(msgspec.Struct, forbid_unknown_fields=True):
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


class AssetDetail(Asset):
    renditions: list[RenditionOut] = []
    steps: list[StepStatus] = []
