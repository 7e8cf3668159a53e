"""A summary of a local media file for ``POST /api/v1/validate`` (format, duration, streams, dimensions, codecs).

The file is read with the one demuxer for its sniffed type (never from the name, never FFmpeg's guess), only the
``file`` protocol is allowed and MP4 data references are off. Images are read with FFmpeg's image demuxers
(dimensions, codec).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import av

from mediasvc.plugin import MediaInfo, MediaUnreadable

log = logging.getLogger("mediasvc_video.validate")

# Sniffed type -> the only demuxer that may read it, with its safety options.
_NO_DREFS = {"enable_drefs": "0", "use_absolute_path": "0"}

DEMUXERS: dict[str, tuple[str, dict[str, str]]] = {
    "video/mp4": ("mov", _NO_DREFS),
    "video/quicktime": ("mov", _NO_DREFS),
    "audio/mp4": ("mov", _NO_DREFS),
    "video/webm": ("matroska", {}),
    "audio/webm": ("matroska", {}),  # audio-only WebM, as an audio profile names it
    "audio/ogg": ("ogg", {}),
    "video/ogg": ("ogg", {}),
    "audio/wav": ("wav", {}),
    "audio/mpeg": ("mp3", {}),
    "image/png": ("png_pipe", {}),
    "image/jpeg": ("jpeg_pipe", {}),
    "image/gif": ("gif", {}),
    "image/webp": ("webp_pipe", {}),
}


def describe_file(path: Path, mime: str) -> MediaInfo:
    """Read ``path`` as ``mime`` (a key of ``DEMUXERS``); raises ``MediaUnreadable`` with a one-line reason."""
    demuxer, extra = DEMUXERS[mime]
    options = {"protocol_whitelist": "file", **extra}
    try:
        with av.open(str(path), mode="r", format=demuxer, options=options) as container:
            duration = container.duration / av.time_base if container.duration and container.duration > 0 else None
            streams = [_stream_summary(stream) for stream in container.streams]
            if mime.startswith("image/"):
                decoded = next(container.decode(video=0), None)
                if decoded is not None and streams:
                    streams[0]["width"], streams[0]["height"] = decoded.width, decoded.height
            info = MediaInfo(
                format=container.format.name,
                duration_seconds=round(duration, 3) if duration and math.isfinite(duration) else None,
                bit_rate=container.bit_rate or None,
                streams=streams,
            )
    except (av.FFmpegError, OSError, ValueError, RuntimeError, StopIteration) as exc:
        # FFmpeg's text names the spool path and an errno: the client gets ours, the log keeps theirs
        log.info("validate: %s could not be read as %s: %s", path.name, mime, exc)
        raise MediaUnreadable(f"the file cannot be read as {mime}") from exc
    if not streams:
        raise MediaUnreadable("no audio, video or image stream found")
    video = next((s for s in streams if s["type"] == "video"), None)
    audio = next((s for s in streams if s["type"] == "audio"), None)
    if video:
        info.width, info.height, info.video_codec = video.get("width"), video.get("height"), video.get("codec")
    if audio:
        info.audio_codec, info.sample_rate = audio.get("codec"), audio.get("sample_rate")
        info.channels = audio.get("channels")
    return info


def _stream_summary(stream: Any) -> dict[str, Any]:
    codec = stream.codec_context
    info: dict[str, Any] = {"index": stream.index, "type": stream.type, "codec": codec.name if codec else None}
    if stream.duration and stream.time_base:
        info["duration_seconds"] = round(float(stream.duration * stream.time_base), 3)
    if stream.type == "video":
        info["width"], info["height"] = codec.width or None, codec.height or None
        rate = stream.average_rate
        info["frame_rate"] = round(float(rate), 3) if rate else None
        info["frames"] = stream.frames or None
    elif stream.type == "audio":
        info["sample_rate"] = codec.sample_rate or None
        info["channels"] = getattr(codec, "channels", None) or None
    return info
