"""Expected cost of the video steps, for weighted progress and ETAs (a processor's ``cost(asset)``).

The unit is roughly "seconds of one core": encoding costs duration x pixels (1 per second of 720p), per rung for
the HLS ladder. The figures come from ``metadata.probe``; before the probe has run they are guessed from the file
size (4 Mbit/s, 720p), so the estimate at upload never changes (``mediasvc.progress`` relies on that).
"""

from __future__ import annotations

import json
from typing import Any

from mediasvc_video.hls_ladder import plan_ladder

HD = 1280 * 720
GUESS_BITRATE = 4_000_000  # bits/s, when the probe has not run
AUDIO_GUESS_BITRATE = 128_000


def probe_of(asset: dict[str, Any]) -> dict[str, Any]:
    metadata = asset.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    return metadata.get("probe") or {}


def duration(asset: dict[str, Any]) -> float:
    """Seconds of media: the probe's, else a guess from the file size."""
    seconds = probe_of(asset).get("duration")
    if seconds:
        return float(seconds)
    rate = GUESS_BITRATE if asset.get("kind") == "video" else AUDIO_GUESS_BITRATE
    return max(1.0, (asset.get("size_bytes") or 0) * 8 / rate)


def size(asset: dict[str, Any]) -> tuple[int, int]:
    probe = probe_of(asset)
    return (probe.get("display_width") or probe.get("width") or 1280,
            probe.get("display_height") or probe.get("height") or 720)


def encode_cost(asset: dict[str, Any]) -> float:
    """One encode at the source size."""
    width, height = size(asset)
    return 1.0 + duration(asset) * width * height / HD


def ladder_cost(asset: dict[str, Any]) -> float:
    """One decode plus an encode per rung."""
    width, height = size(asset)
    rungs = plan_ladder(width, height)
    pixels = sum(r.width * r.height for r in rungs)
    return 1.0 + duration(asset) * (0.3 * width * height + pixels) / HD
