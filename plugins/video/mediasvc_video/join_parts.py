"""What joining needs to know of each chunk first, from one demux pass (no decoding): start time, keyframe
times and codec parameters; and the containers a joined recording can be written as.

Every file is opened with ``probe_local.open_local`` (local files, allow-listed demuxers only).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from mediasvc_video.probe_local import open_local
from mediasvc.plugin import JoinError, JoinPart

# output container per extension: (FFmpeg muxer, muxer options)
MUXERS: dict[str, tuple[str, dict[str, str]]] = {
    "mp4": ("mp4", {"movflags": "+faststart"}),
    "mov": ("mov", {"movflags": "+faststart"}),
    "m4a": ("ipod", {"movflags": "+faststart"}),
    "webm": ("webm", {}),
    "mkv": ("matroska", {}),
    "ogg": ("ogg", {}),
    "mp3": ("mp3", {}),
    "wav": ("wav", {}),
}


@dataclass
class PartInfo:
    start: Fraction  # earliest timestamp of the chosen streams, seconds
    video: dict[str, Any] | None
    audio: dict[str, Any] | None
    keyframes: list[Fraction]  # video keyframe times relative to start
    frame_duration: Fraction | None
    audio_packet: Fraction | None


def stream_signature(stream: Any) -> dict[str, Any]:
    cc = stream.codec_context
    sig: dict[str, Any] = {"codec": cc.name, "extradata": bytes(cc.extradata or b"")}
    if stream.type == "video":
        sig.update(width=cc.width, height=cc.height, pix_fmt=cc.pix_fmt)
    else:
        sig.update(rate=cc.sample_rate, channels=cc.channels if hasattr(cc, "channels") else cc.layout.nb_channels,
                   format=cc.format.name if cc.format else None)
    return sig


def pick_streams(container: Any) -> tuple[Any, Any]:
    video = next((s for s in container.streams.video), None)
    audio = next((s for s in container.streams.audio), None)
    if video is None and audio is None:
        raise JoinError("a chunk has no audio or video stream")
    return video, audio


def analyse(part: JoinPart) -> PartInfo:
    """One demux pass (no decoding): start time, keyframe times, codec parameters."""
    with open_local(part.path) as container:
        video, audio = pick_streams(container)
        chosen = [s for s in (video, audio) if s is not None]
        first: dict[int, Fraction] = {}
        keyframes_abs: list[Fraction] = []
        frame_duration: Fraction | None = None
        audio_packet: Fraction | None = None
        for packet in container.demux(chosen):
            if packet.size == 0 or packet.pts is None:
                continue
            t = packet.pts * packet.time_base
            index = packet.stream.index
            first[index] = min(first.get(index, t), t)
            if video is not None and index == video.index:
                if packet.is_keyframe:
                    keyframes_abs.append(t)
                if packet.duration and frame_duration is None:
                    frame_duration = packet.duration * packet.time_base
            elif packet.duration and audio_packet is None:
                audio_packet = packet.duration * packet.time_base
        if not first:
            raise JoinError(f"chunk {part.path.name} has no media packets")
        # the container's start (FFmpeg accounts for edit lists: AAC priming packets have negative timestamps)
        start = Fraction(container.start_time, av.time_base) if container.start_time is not None \
            else min(first.values())
        if video is not None and video.index not in first:
            video = None
        if audio is not None and audio.index not in first:
            audio = None
        return PartInfo(
            start=start,
            video=stream_signature(video) if video is not None else None,
            audio=stream_signature(audio) if audio is not None else None,
            keyframes=sorted(k - start for k in keyframes_abs),
            frame_duration=frame_duration,
            audio_packet=audio_packet,
        )

