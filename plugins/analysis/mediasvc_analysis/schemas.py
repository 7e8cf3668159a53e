"""API payloads (msgspec): the analyze-image request and response, batch, attributes, similar."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from mediasvc.plugin import Box

from mediasvc_analysis.colors import DominantColor


class AnalyzeRequest(msgspec.Struct, forbid_unknown_fields=True):
    asset_id: UUID
    analysis_types: list[str] | None = None  # None: the settings' default_types
    max_labels: int | None = None
    min_confidence: float | None = None


class Label(msgspec.Struct):
    name: str
    confidence: float
    parents: list[str] = []


class TextDetection(msgspec.Struct):
    text: str
    confidence: float
    box: Box | None = None


class ObjectDetection(msgspec.Struct):
    name: str
    confidence: float
    box: Box | None = None
    parents: list[str] = []


class Face(msgspec.Struct):
    confidence: float
    box: Box | None = None


class Moderation(msgspec.Struct):
    scores: dict[str, float]
    flagged: bool  # a score at or above the configured threshold
    threshold: float


class AnalyzeResponse(msgspec.Struct):
    analysis_types: list[str]
    width: int  # the original's size after EXIF orientation; boxes are in these pixels
    height: int
    labels: list[Label] = []
    text: list[TextDetection] = []
    objects: list[ObjectDetection] = []
    faces: list[Face] = []
    moderation: Moderation | None = None
    models: dict[str, str] = {}
    timings_ms: dict[str, float] = {}  # per analysis type
    processing_time_ms: float = 0.0  # decode + every analyzer
    asset_id: UUID | None = None
    phash: str | None = None  # 16 hex digits; stored assets only (uploads are not hashed)


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    asset_ids: list[UUID]
    analysis_types: list[str] | None = None
    max_labels: int | None = None
    min_confidence: float | None = None


class BatchJob(msgspec.Struct):
    asset_id: UUID
    job_id: str


class BatchResponse(msgspec.Struct):
    jobs: list[BatchJob]
    analysis_types: list[str]


class AttributesRequest(msgspec.Struct, forbid_unknown_fields=True):
    asset_id: UUID
    max_labels: int | None = None


class ProductAttributes(msgspec.Struct):
    width: int
    height: int
    orientation: str  # landscape | portrait | square
    aspect_ratio: float
    dominant_colors: list[DominantColor]
    text: list[str]
    labels: list[Label]
    objects: list[ObjectDetection]
    asset_id: UUID | None = None
    analysis_types: list[str] = []
    processing_time_ms: float = 0.0


class SimilarAsset(msgspec.Struct):
    asset_id: UUID
    distance: int  # Hamming distance of the 64-bit pHashes
    original_name: str
    phash: str


class SimilarResponse(msgspec.Struct):
    asset_id: UUID
    max_distance: int
    items: list[SimilarAsset]


def to_dict(value: Any) -> Any:
    return msgspec.to_builtins(value)
