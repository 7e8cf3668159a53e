"""Remux when compliant: an upload that browsers already play (H.264 Baseline/Main/High up to level 5.1, 8-bit
4:2:0, AAC or no audio, in MP4/MOV, keyframes at least every ``MAX_GOP_SECONDS``, within the MP4 size box) becomes
the ``mp4`` rendition by copying its packets into a new MP4 with the index first (``faststart``): seconds instead
of a re-encode. The display matrix (rotation) is copied with the stream parameters. ``reason_to_encode`` says why
a file is not copied ("codec vp9", "pixel format yuv444p"...); audio-only sources are judged the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import av

from mediasvc_video.limits import VideoLimits

CONTAINERS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})  # the names FFmpeg's mov demuxer answers to
H264_PROFILES = frozenset({"Baseline", "Constrained Baseline", "Main", "High"})
MAX_LEVEL = 51  # 5.1
MAX_GOP_SECONDS = 10.0
MAX_AUDIO_CHANNELS = 2
MAX_START_SECONDS = 1.0  # a stream starting later than this (an edit list, a cut) is re-timed by encoding


def _media_streams(container: Any) -> tuple[list[Any], list[Any], list[Any]]:
    video = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    audio = list(container.streams.audio)
    return video, audio, [s for s in container.streams if s.type not in ("video", "audio")]


def _start(stream: Any) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0


def reason_to_encode(container: Any, limits: VideoLimits, *, shown: tuple[int, int] | None = None) -> str | None:
    """None when ``container`` (an open input) can be copied as is; else why not. Reads the packets of the video
    stream (no decoding) to measure the keyframe interval, then seeks back to the start."""
    video, audio, _other = _media_streams(container)
    if len(video) > 1 or len(audio) > 1:
        return f"{len(video)} video and {len(audio)} audio streams"
    if video:
        cc = video[0].codec_context
        if cc.name != "h264":
            return f"codec {cc.name}"
        if cc.profile not in H264_PROFILES:
            return f"h264 profile {cc.profile}"
        if not cc.level or cc.level > MAX_LEVEL:
            return f"h264 level {cc.level}"
        if cc.format is None or cc.format.name != "yuv420p":
            return f"pixel format {cc.format.name if cc.format else None}"
        width, height = shown or (cc.width, cc.height)
        if max(width, height) > limits.mp4_max_width or min(width, height) > limits.mp4_max_height:
            return f"size {width}x{height} over {limits.mp4_max_width}x{limits.mp4_max_height}"
    for stream in audio:
        cc = stream.codec_context
        if cc.name != "aac":
            return f"audio codec {cc.name}"
        if (cc.channels or 0) > MAX_AUDIO_CHANNELS:
            return f"{cc.channels} audio channels"
    if not set(container.format.name.split(",")) & CONTAINERS:  # H.264/AAC in MKV or TS: a remux would do,
        return f"container {container.format.name}"  # but copying means MP4 sources only, for now
    starts = [_start(s) for s in video + audio]
    if any(abs(t) > MAX_START_SECONDS for t in starts):
        return "streams start late (edit list)"
    if video:
        return _gop_problem(container, video[0])
    return None


def _gop_problem(container: Any, stream: Any) -> str | None:
    """The longest keyframe interval, and packets without timestamps, from the packets alone."""
    base = stream.time_base
    last_key = None
    longest = 0.0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None or packet.dts is None:
                return "video packets without timestamps"
            if packet.is_keyframe:
                if last_key is not None:
                    longest = max(longest, float((packet.pts - last_key) * base))
                last_key = packet.pts
        if last_key is None:
            return "no keyframe"
        end = stream.duration * base if stream.duration else None
        if end is not None:
            longest = max(longest, float(end) - float(last_key * base) - _start(stream))
    finally:
        container.seek(0)
    if longest > MAX_GOP_SECONDS:
        return f"keyframes {longest:.0f} s apart"
    return None


def remux(container: Any, target: Path, report: Callable[[float], None], duration: float | None) -> dict[str, Any]:
    """Copy the audio and video packets of ``container`` into ``target`` (MP4, moov first)."""
    video, audio, _other = _media_streams(container)
    streams = video + audio
    with av.open(str(target), "w", format="mp4", options={"movflags": "faststart"}) as dst:
        outputs = {s.index: dst.add_stream_from_template(s) for s in streams}
        reported = -1.0
        for packet in container.demux(streams):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            stream = packet.stream
            packet.stream = outputs[stream.index]
            dst.mux(packet)
            if duration and packet.pts is not None and stream in video:
                done = min(99.0, 100.0 * float(packet.pts * stream.time_base) / duration)
                if done > reported:  # packets come in decode order: B-frames' pts go back and forth
                    reported = done
                    report(done)
    return {"has_audio": bool(audio), "has_video": bool(video)}
