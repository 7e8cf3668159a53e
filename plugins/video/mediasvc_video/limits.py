"""The video plugin's settings section ``[plugins.video]``: input limits enforced after probing, the MP4 size and
what the probe does with a truncated file. Declared with ``register_settings`` (a bad value fails start-up)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

SECTION = "video"
MAX_DURATION_SECONDS = 4 * 3600.0
MAX_WIDTH = 7680  # the long side
MAX_HEIGHT = 4320  # the short side (portrait 8K passes too)
MAX_STREAMS = 8
# MP4 rendition: scaled down to fit (never up), long side x short side
MP4_MAX_WIDTH = 1920
MP4_MAX_HEIGHT = 1080

# a file whose media ends before its declared duration: fail the probe step, or keep what can be read and flag
# the asset ``partial`` (in ``metadata.probe`` and the ``media.processed`` event)
TruncatedPolicy = Literal["fail", "flag"]


class VideoLimits(msgspec.Struct, frozen=True):
    max_duration_seconds: float = MAX_DURATION_SECONDS
    max_width: int = MAX_WIDTH
    max_height: int = MAX_HEIGHT
    max_streams: int = MAX_STREAMS
    mp4_max_width: int = MP4_MAX_WIDTH
    mp4_max_height: int = MP4_MAX_HEIGHT
    hls_preset: str = "veryfast"  # the x264 preset of the HLS rungs (read by ``hls``)
    # ``hls``: encode and publish the lowest rung first (playable early) at the cost of a second decode
    hls_first_rung_early: bool = True
    truncated: TruncatedPolicy = "fail"
    truncated_by_profile: dict[str, TruncatedPolicy] = {}  # per profile name, overrides ``truncated``

    def truncated_policy(self, profile: str | None) -> TruncatedPolicy:
        return self.truncated_by_profile.get(profile or "", self.truncated)


def limits_from(settings: Any) -> VideoLimits:
    """The section with the ``plugins.video`` overrides applied (unknown keys are ignored)."""
    raw = dict(getattr(settings, "plugins", {}).get(SECTION, {}) or {})
    known = {k: v for k, v in raw.items() if k in VideoLimits.__struct_fields__}
    return msgspec.convert(known, VideoLimits, strict=False)
