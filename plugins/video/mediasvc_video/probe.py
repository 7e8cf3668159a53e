"""``probe``: duration, container, streams, size, fps, bitrate, rotation into ``metadata["probe"]``.

It also reads every packet (demuxing, no decoding: cheap) to see how much of the file's declared duration is really
there: an upload cut short keeps its header, so without this a 0.6 s fragment of a 2 s clip would be probed as 2 s
and processed to ``ready``. A truncated file fails the step, or, with ``truncated = "flag"`` in ``[plugins.video]``
(or per profile in ``truncated_by_profile``), is kept and flagged ``partial`` with the duration that can be read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from mediasvc_video.limits import VideoLimits, limits_from
from mediasvc_video.media import is_input_error, local_input, open_media, run_with_progress
from mediasvc.plugin import SNIFF_BYTES, PermanentProcessingError, ProcessorResult, sniff


def _rate(value: Fraction | None) -> float | None:
    if not value or value <= 0:
        return None
    return round(float(value), 3)


def _normal_rotation(degrees: float) -> int:
    """Counter-clockwise degrees snapped to 0/90/180/270."""
    return round(degrees / 90.0) * 90 % 360


def _rotation(container: Any, stream: Any) -> int:
    """Counter-clockwise rotation to apply for display: the display matrix, else the legacy ``rotate`` tag
    (which is clockwise)."""
    tag = stream.metadata.get("rotate")
    try:
        for frame in container.decode(stream):
            if frame.rotation:
                return _normal_rotation(frame.rotation)
            break
    finally:
        container.seek(0)
    if tag:
        try:
            return _normal_rotation(-float(tag))
        except ValueError:
            pass
    return 0


def _duration(container: Any) -> float | None:
    if container.duration and container.duration > 0:
        return container.duration / 1_000_000
    best: float | None = None
    for stream in container.streams:
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
            best = seconds if best is None else max(best, seconds)
    if best is not None:
        return best
    # no duration in the header (WebM from MediaRecorder): read it from the packet timestamps
    end = None
    for packet in container.demux():
        if packet.pts is not None and packet.time_base is not None:
            t = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            end = t if end is None else max(end, t)
    container.seek(0)
    return end


# how far short of its declared duration a stream may end before the file counts as truncated
TRUNCATION_SLACK_SECONDS = 0.5
TRUNCATION_SLACK_RATIO = 0.02
_REPORT_EVERY = 500  # packets


class TruncatedMedia(PermanentProcessingError):
    """The file ends before the duration its header declares (an upload cut short)."""

    code = "truncated_media"

    def __init__(self, readable: float, declared: float) -> None:
        super().__init__(f"the file is truncated: {readable:.1f} s of {declared:.1f} s can be read")
        self.readable, self.declared = readable, declared


def _header_duration(container: Any) -> float | None:
    return container.duration / 1_000_000 if container.duration and container.duration > 0 else None


def _media_streams(container: Any) -> list[Any]:
    """Audio and video streams, without cover art (an attached picture is one packet, whatever the duration)."""
    return [s for s in container.streams if s.type in ("video", "audio")
            and not s.disposition & av.stream.Disposition.attached_pic]


def _packet_spans(container: Any, path: Path,
                  report: Callable[[float], None] | None) -> dict[int, tuple[Fraction, Fraction]]:
    """(first timestamp, last packet's end) in seconds per stream index, from every packet that can be read.
    The loop keeps to integers in each stream's time base (~15 us a packet here: a 4 h file in ~20 s)."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    streams = _media_streams(container)
    if not streams:
        return {}
    size = max(1, path.stat().st_size)
    try:
        for n, packet in enumerate(container.demux(streams)):
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                continue
            index = packet.stream_index
            if index not in first or ts < first[index]:
                first[index] = ts
            end = ts + (packet.duration or 0)
            if end > last.get(index, end - 1):
                last[index] = end
            if report is not None and n % _REPORT_EVERY == 0 and packet.pos and packet.pos > 0:
                report(min(99.0, 100.0 * packet.pos / size))
    except Exception as exc:  # broken data part-way: what was read so far is what can be read
        if not is_input_error(exc):
            raise
    finally:
        container.seek(0)
    base = {s.index: s.time_base for s in streams}
    return {i: (first[i] * base[i], last[i] * base[i]) for i in first if base.get(i)}


def _declared(container: Any, stream: Any) -> float | None:
    """What the header promises for a stream: its own duration, else the container's."""
    if stream.duration and stream.time_base and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    return _header_duration(container)


def shortfall(container: Any, spans: dict[int, tuple[Fraction, Fraction]]) -> tuple[float, float] | None:
    """``(readable, declared)`` seconds of the stream that ends furthest before its declared duration, or None
    when every stream is (nearly) whole or nothing declares a duration (WebM from MediaRecorder)."""
    worst: tuple[float, float] | None = None
    for stream in _media_streams(container):
        declared = _declared(container, stream)
        if not declared:
            continue
        first, last = spans.get(stream.index, (Fraction(0), Fraction(0)))
        readable = max(0.0, float(last - first))
        if declared - readable > max(TRUNCATION_SLACK_SECONDS, TRUNCATION_SLACK_RATIO * declared) and (
                worst is None or readable / declared < worst[0] / worst[1]):
            worst = (readable, declared)
    return worst


def _spans_duration(spans: dict[int, tuple[Fraction, Fraction]]) -> float | None:
    if not spans:
        return None
    return float(max(last for _, last in spans.values()) - min(first for first, _ in spans.values()))


def _mime(path: Path) -> str:
    with open(path, "rb") as handle:
        return sniff(handle.read(SNIFF_BYTES)).mime


def inspect(path: Path, report: Callable[[float], None] | None = None, *,
            truncated: str = "fail") -> dict[str, Any]:
    """What is in the file (blocking). Raises ``PermanentProcessingError`` for input that cannot be read, and
    ``TruncatedMedia`` for a file that ends before its declared duration unless ``truncated == "flag"`` (then
    ``partial`` is true and ``duration`` is what can be read; ``declared_duration`` is the header's)."""
    with open_media(path) as container:
        streams = []
        for s in container.streams:
            cc = s.codec_context
            entry: dict[str, Any] = {"index": s.index, "type": s.type,
                                     "codec": cc.name if cc is not None else None}
            if s.type == "video":
                entry.update(width=cc.width, height=cc.height, fps=_rate(s.average_rate or s.guessed_rate),
                             pix_fmt=cc.format.name if cc.format else None)
            elif s.type == "audio":
                entry.update(sample_rate=cc.sample_rate, channels=cc.channels)
            if s.bit_rate:
                entry["bitrate"] = s.bit_rate
            streams.append(entry)
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise PermanentProcessingError("the file has no audio or video stream")
        spans = _packet_spans(container, path, report)
        short = shortfall(container, spans)
        if short is not None and truncated != "flag":
            raise TruncatedMedia(*short)
        duration = _header_duration(container) or _spans_duration(spans)
        if short is not None:
            duration = _spans_duration(spans)
        info: dict[str, Any] = {
            "container": container.format.name,  # the demuxer: mov (mp4/m4a/mov), matroska (webm), ogg...
            "mime": _mime(path),
            "duration": round(duration, 3) if duration and math.isfinite(duration) else None,
            "bitrate": container.bit_rate or None,
            "size_bytes": path.stat().st_size,
            "streams": streams,
            "has_video": video is not None,
            "has_audio": audio is not None,
            "video_codec": video.codec_context.name if video is not None else None,
            "audio_codec": audio.codec_context.name if audio is not None else None,
            "partial": short is not None,
        }
        if short is not None:
            info["declared_duration"] = round(short[1], 3)
        if video is not None:
            rotation = _rotation(container, video)
            width, height = video.codec_context.width, video.codec_context.height
            info.update(width=width, height=height, fps=_rate(video.average_rate or video.guessed_rate),
                        rotation=rotation)
            # the size the picture is shown at, after rotation
            info["display_width"], info["display_height"] = (height, width) if rotation in (90, 270) \
                else (width, height)
        if audio is not None:
            info.update(sample_rate=audio.codec_context.sample_rate, channels=audio.codec_context.channels)
        return info


def check_limits(info: dict[str, Any], limits: VideoLimits) -> None:
    """Raise ``PermanentProcessingError`` naming the limit the file is over."""
    duration = info.get("duration")
    if duration is None:
        raise PermanentProcessingError("the duration of the media cannot be determined")
    if duration > limits.max_duration_seconds:
        raise PermanentProcessingError(
            f"duration {duration:.0f}s is over the limit of {limits.max_duration_seconds:.0f}s")
    if len(info["streams"]) > limits.max_streams:
        raise PermanentProcessingError(
            f"{len(info['streams'])} streams is over the limit of {limits.max_streams}")
    for s in info["streams"]:
        if s["type"] == "video":
            w, h = s.get("width") or 0, s.get("height") or 0
            if max(w, h) > limits.max_width or min(w, h) > limits.max_height:
                raise PermanentProcessingError(
                    f"video size {w}x{h} is over the limit of {limits.max_width}x{limits.max_height}")


class ProbeProcessor:
    name = "probe"
    kinds = frozenset({"video", "audio"})
    timeout_seconds = 120
    needs: frozenset[str] = frozenset()  # first: the other steps need what it checks

    def cost(self, asset: dict[str, Any]) -> float:
        return 1.0 + (asset.get("size_bytes") or 0) / 200_000_000  # reads packets, decodes nothing

    async def run(self, ctx: Any) -> ProcessorResult:
        limits = limits_from(ctx.settings)
        policy = limits.truncated_policy(ctx.asset.get("profile"))
        async with local_input(ctx) as path:
            info = await run_with_progress(ctx, lambda report: inspect(path, report, truncated=policy))
        check_limits(info, limits)
        await ctx.progress(100)
        return ProcessorResult(metadata={"probe": info})


class VideoInput:
    """The facts about a source's video that every transcoder needs, read once after opening it."""

    def __init__(self, src: Any) -> None:
        if not src.streams.video:
            raise PermanentProcessingError("the file has no video stream")
        self.video = src.streams.video[0]
        self.video.thread_type = "AUTO"
        self.audio = src.streams.audio[0] if src.streams.audio else None
        self.duration = _duration(src) or 0.0
        self.width, self.height = self.video.codec_context.width, self.video.codec_context.height
        if not self.width or not self.height:
            raise PermanentProcessingError("the video stream has no picture size")
        # the rotation is in the frames' display matrix: peek at the first frame, then rewind
        first = next(iter(src.decode(self.video)), None)
        if first is None:
            raise PermanentProcessingError("no video frame could be decoded")
        self.rotation = _normal_rotation(first.rotation or 0)
        src.seek(0)
        turned = self.rotation in (90, 270)
        self.shown_width, self.shown_height = (self.height, self.width) if turned else (self.width, self.height)
