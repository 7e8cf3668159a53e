"""Joining a session's chunk files into one recording with the overlaps trimmed (blocking: run it in a thread).

Each chunk after the first starts ``trim`` seconds late (its overlap with the previous chunk). Remux is tried first:
packets are copied with shifted timestamps, each chunk's video starting at the keyframe that falls on its trim
point (so nothing is decoded). When the codecs differ between chunks, or no keyframe lies on a trim point, or the
timestamps would not stay monotonic, the chunks are decoded and re-encoded (``join_reencode``).

Every file is opened with ``probe_local.open_local`` (local files, allow-listed demuxers only).
"""

from __future__ import annotations

import contextlib
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from mediasvc_video.join_parts import MUXERS, PartInfo, analyse, pick_streams
from mediasvc_video.join_reencode import reencode
from mediasvc_video.join_stream import join_stream
from mediasvc_video.probe_local import open_local
from mediasvc.plugin import JoinError, JoinPart, JoinResult

log = logging.getLogger("mediasvc.sessions.join")


class CannotRemux(Exception):
    """Remux is not possible for these chunks; re-encode instead."""


class PyAvJoiner:
    """The ``ChunkJoiner`` of this plugin (``register_chunk_joiners``)."""

    name = "pyav"

    def join(self, parts: list[JoinPart], out_path: Path, extension: str, *, kind: str) -> JoinResult:
        return join_files(parts, out_path, extension, kind=kind)

    def join_stream(self, parts: list[JoinPart], out_path: Path, extension: str, *, kind: str) -> JoinResult:
        return join_stream(parts, out_path, extension, kind=kind)


def join_files(parts: list[JoinPart], out_path: Path, extension: str, *, kind: str) -> JoinResult:
    """Write the joined recording to ``out_path`` (container chosen by ``extension``)."""
    if not parts:
        raise JoinError("no chunks to join")
    infos = []
    for number, part in enumerate(parts):
        try:
            infos.append(analyse(part))
        except av.FFmpegError as exc:  # a chunk that sniffed as media but is not (cut, corrupt): say which
            raise JoinError(f"chunk {number + 1} of {len(parts)} cannot be read as media: "
                            f"{exc.strerror or type(exc).__name__}") from None
    try:
        return _remux(parts, infos, out_path, extension)
    except CannotRemux as exc:
        log.info("joining by re-encoding: %s", exc)
        with contextlib.suppress(OSError):
            out_path.unlink()
    return reencode(parts, infos, out_path, kind=kind)


# --- remux ---------------------------------------------------------------------------------------------------


def _cut_points(parts: list[JoinPart], infos: list[PartInfo]) -> list[Fraction]:
    """Where each chunk's copy starts (relative to its start): a video keyframe on its trim point."""
    cuts: list[Fraction] = []
    for part, info in zip(parts, infos):
        trim = Fraction(part.trim).limit_denominator(1_000_000)
        if trim <= 0:
            cuts.append(Fraction(0))
            continue
        if info.video is None:  # audio only: cut at the packet boundary nearest the trim point
            cuts.append(trim)
            continue
        tolerance = (info.frame_duration or Fraction(1, 30)) / 2
        key = next((k for k in info.keyframes if abs(k - trim) <= tolerance), None)
        if key is None:
            raise CannotRemux(f"no keyframe at the {float(trim):.3f}s overlap of {part.path.name}")
        cuts.append(key)
    return cuts


def _remux(parts: list[JoinPart], infos: list[PartInfo], out_path: Path, extension: str) -> JoinResult:
    reference = infos[0]
    for info in infos[1:]:
        if info.video != reference.video or info.audio != reference.audio:
            raise CannotRemux("the chunks' codecs or parameters differ")
    cuts = _cut_points(parts, infos)
    if extension not in MUXERS:
        raise CannotRemux(f"no muxer for .{extension}")
    muxer, options = MUXERS[extension]
    offset = Fraction(0)
    last_dts: dict[str, Fraction] = {}
    try:
        with av.open(str(out_path), mode="w", format=muxer, options=options) as output:
            out_streams: dict[str, Any] = {}
            for index, (part, info, cut) in enumerate(zip(parts, infos, cuts)):
                with open_local(part.path) as container:
                    video, audio = pick_streams(container)
                    if info.video is None:
                        video = None
                    if info.audio is None:
                        audio = None
                    if index == 0:
                        for name, stream in (("video", video), ("audio", audio)):
                            if stream is not None:
                                try:
                                    out_streams[name] = output.add_stream_from_template(stream)
                                except (ValueError, av.FFmpegError) as exc:
                                    raise CannotRemux(f"{muxer} cannot hold {stream.codec_context.name}") from exc
                    offset = _copy_part(container, video, audio, out_streams, info, cut, offset, last_dts, output)
    except (av.FFmpegError, ValueError) as exc:
        raise CannotRemux(f"muxing failed: {exc}") from exc
    return JoinResult(mode="remux", duration=float(offset), parts=len(parts), extension=extension)


def _copy_part(container: Any, video: Any, audio: Any, out_streams: dict[str, Any], info: PartInfo, cut: Fraction,
               offset: Fraction, last_dts: dict[str, Fraction], output: Any) -> Fraction:
    chosen = [s for s in (video, audio) if s is not None]
    started_video = video is None
    audio_tolerance = (info.audio_packet or Fraction(1, 50)) / 2
    video_tolerance = (info.frame_duration or Fraction(1, 30)) / 2
    end = Fraction(0)
    video_end = Fraction(0)
    for packet in container.demux(chosen):
        if packet.size == 0 or packet.pts is None:
            continue
        tb = packet.time_base
        t = packet.pts * tb - info.start
        is_video = video is not None and packet.stream.index == video.index
        if is_video:
            if not started_video:
                if not (packet.is_keyframe and t >= cut - video_tolerance):
                    continue
                started_video = True
        elif t < cut - audio_tolerance:
            continue
        # shift by a whole number of ticks so timestamps stay exact integers
        shift = round((offset - cut - info.start) / tb)
        packet.pts += shift
        dts = packet.dts if packet.dts is not None else packet.pts - shift
        packet.dts = dts + shift
        name = "video" if is_video else "audio"
        dts_seconds = packet.dts * tb
        if name in last_dts and dts_seconds <= last_dts[name]:
            if not is_video:  # audio running a few ms past the previous chunk's video: drop the doubled packet
                continue
            raise CannotRemux("video timestamps would not increase across a chunk boundary")
        last_dts[name] = dts_seconds
        packet_end = t + (packet.duration or 0) * tb
        end = max(end, packet_end)
        if is_video:
            video_end = max(video_end, packet_end)
        packet.stream = out_streams[name]
        output.mux(packet)
    length = (video_end if video is not None else end) - cut
    if length <= 0:
        raise CannotRemux("a chunk has nothing left after trimming its overlap")
    return offset + length

