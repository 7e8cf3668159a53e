"""Safe opening of local media files with PyAV, and their duration.

Only local files are opened, only through the ``file`` protocol, and only with a demuxer from an allow-list chosen
from the file's magic bytes (never its name): a playlist or any other format disguised as media cannot make FFmpeg
fetch a URL or read another file (``mov`` data references are off too).
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from mediasvc.plugin import sniff

log = logging.getLogger("mediasvc.probe")

HEAD_BYTES = 64  # what ``sniff`` reads: enough for every signature it knows

# FFmpeg demuxer names we accept (the brief's allow-list; "mp4"/"m4a" resolve to the mov demuxer, "webm" to matroska)
ALLOWED_DEMUXERS = frozenset({"mov", "mp4", "m4a", "matroska", "webm", "ogg", "wav", "mp3"})

_DEMUXER_FOR_MIME = {
    "video/mp4": "mov",
    "video/quicktime": "mov",
    "audio/mp4": "mov",
    "video/webm": "matroska",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
}

_DEMUXER_OPTIONS: dict[str, dict[str, str]] = {
    "mov": {"enable_drefs": "0", "use_absolute_path": "0"},
    "mp4": {"enable_drefs": "0", "use_absolute_path": "0"},
    "m4a": {"enable_drefs": "0", "use_absolute_path": "0"},
}


class UnsafeInput(ValueError):
    """The path is not a local regular file, or its content is not a format we open."""


def demuxer_for(path: str | Path) -> str | None:
    """The allowed demuxer for the file's content (magic bytes), or None."""
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    return _DEMUXER_FOR_MIME.get(sniff(head).mime)


def open_local(path: str | Path, format: str | None = None) -> Any:
    """Open a local media file for reading with the safe options. ``format`` defaults to the sniffed demuxer.

    Raises ``UnsafeInput`` for anything that is not a regular local file in an allowed format, and PyAV's errors
    for files that are broken."""
    local = Path(path)
    if "://" in str(path) or not local.is_absolute():
        local = local.resolve()
    if not local.is_file():
        raise UnsafeInput(f"not a local regular file: {str(path)!r}")
    demuxer = format or demuxer_for(local)
    if demuxer not in ALLOWED_DEMUXERS:
        raise UnsafeInput(f"content of {local.name!r} is not an allowed media format")
    options = {"protocol_whitelist": "file", **_DEMUXER_OPTIONS.get(demuxer, {})}
    # An absolute path has no "scheme:" prefix, so FFmpeg reads it with the file protocol (whitelisted alone).
    return av.open(str(local), mode="r", format=demuxer, options=options)


def _header_duration(container: Any) -> float | None:
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    best: float | None = None
    for stream in container.streams:
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
            best = seconds if best is None else max(best, seconds)
    return best


def _demuxed_duration(container: Any) -> float | None:
    """From packet timestamps: WebM written by MediaRecorder carries no duration in its header."""
    start: Fraction | None = None
    end: Fraction | None = None
    streams = [s for s in container.streams if s.type in ("video", "audio")]
    if not streams:
        return None
    for packet in container.demux(streams):
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None or packet.time_base is None:
            continue
        t0 = ts * packet.time_base
        t1 = (ts + (packet.duration or 0)) * packet.time_base
        start = t0 if start is None else min(start, t0)
        end = t1 if end is None else max(end, t1)
    if start is None or end is None:
        return None
    return float(end - start)


def probe_duration(path: str | Path, format: str | None = None) -> float | None:
    """Duration in seconds of a local media file, or None when it cannot be told (broken or not allowed)."""
    try:
        with open_local(path, format) as container:
            duration = _header_duration(container)
            if duration is None:
                duration = _demuxed_duration(container)
    except (UnsafeInput, av.FFmpegError, OSError, ValueError, RuntimeError) as exc:
        log.info("probe of %s failed: %s", Path(path).name, exc)
        return None
    if duration is None or not math.isfinite(duration) or duration <= 0:
        return None
    return duration
