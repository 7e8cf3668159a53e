"""Input limits enforced after probing; each can be overridden in ``settings.plugins["video"]``."""

from __future__ import annotations

from typing import Any

import msgspec

MAX_DURATION_SECONDS = 4 * 3600.0
MAX_WIDTH = 7680  # the long side
MAX_HEIGHT = 4320  # the short side (portrait 8K passes too)
MAX_STREAMS = 8
# MP4 rendition: scaled down to fit (never up), long side x short side
MP4_MAX_WIDTH = 1920
MP4_MAX_HEIGHT = 1080


class VideoLimits(msgspec.Struct, frozen=True):
    max_duration_seconds: float = MAX_DURATION_SECONDS
    max_width: int = MAX_WIDTH
    max_height: int = MAX_HEIGHT
    max_streams: int = MAX_STREAMS
    mp4_max_width: int = MP4_MAX_WIDTH
    mp4_max_height: int = MP4_MAX_HEIGHT


def limits_from(settings: Any) -> VideoLimits:
    """The limits with the ``plugins.video`` overrides applied (unknown keys are ignored)."""
    raw = dict(getattr(settings, "plugins", {}).get("video", {}) or {})
    known = {k: v for k, v in raw.items() if k in VideoLimits.__struct_fields__}
    return msgspec.convert(known, VideoLimits, strict=False)
