"""Settings section ``analysis`` (``[plugins.analysis]``, env ``MEDIASVC_PLUGINS__ANALYSIS__<KEY>``)."""

from __future__ import annotations

from typing import Any

import msgspec

SECTION = "analysis"
ANALYSIS_TYPES = ("labels", "text", "objects", "faces", "moderation")


class AnalysisSettings(msgspec.Struct, forbid_unknown_fields=True):
    default_types: list[str] = msgspec.field(default_factory=lambda: ["labels", "text", "faces", "moderation"])
    moderation_threshold: float = 0.8  # open_nsfw score at or above which an asset is flagged for review
    max_upload_bytes: int = 20 * 1024 * 1024  # analyze-image uploads, and originals read for analysis
    max_pixels: int = 40_000_000  # refused before decoding past this (decompression bombs)
    max_side: int = 20_000  # absurd dimensions are refused even under the pixel limit
    analysis_side: int = 2048  # the image analyzers see is scaled so its longer side is at most this
    max_labels: int = 10
    min_confidence: float = 0.0
    threads: int = 1  # onnxruntime / OpenCV threads per analyzer call
    max_batch: int = 100  # asset ids per analyze-image/batch request
    similar_max_distance: int = 10  # default Hamming distance for /assets/{id}/similar (of 64 bits)
    job_timeout_seconds: int = 300


def analysis_settings(settings: Any) -> AnalysisSettings:
    """The validated section; the host validates it at start-up, this re-reads it for code without the host."""
    return msgspec.convert(settings.plugins.get(SECTION) or {}, AnalysisSettings, strict=False)
