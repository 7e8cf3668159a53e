"""Is the original playable as it is in a browser (progressive download with Range requests)?

MP4 with H.264 video and AAC (or no) audio, WebM with VP8/VP9/AV1 video and Opus/Vorbis (or no) audio. The probe's
findings decide when there are any (``metadata.probe``: its MIME type and codecs); before the probe ran, the
declared content type alone does (the codecs are unknown then, so this is a guess a player can fall back from).
"""

from __future__ import annotations

from typing import Any

PLAYABLE = {
    "video/mp4": ({"h264"}, {"aac", None}),
    "video/webm": ({"vp8", "vp9", "av1"}, {"opus", "vorbis", None}),
}


def browser_playable(row: dict[str, Any]) -> bool:
    """True when browsers play the asset's original as it is (see the module docstring)."""
    if row.get("kind") != "video":
        return False
    probe = (row.get("metadata") or {}).get("probe") or {}
    if not probe:
        return (row.get("content_type") or "").split(";")[0].strip().lower() in PLAYABLE
    codecs = PLAYABLE.get(str(probe.get("mime") or "").lower())
    if codecs is None or probe.get("partial"):
        return False
    video, audio = codecs
    return probe.get("video_codec") in video and probe.get("audio_codec") in audio
