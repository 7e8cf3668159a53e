"""Joining a session's chunk files into one recording with the overlaps trimmed (blocking: run it in a thread).

Each chunk after the first starts ``trim`` seconds late (its overlap with the previous chunk). Remux is tried first:
packets are copied with shifted timestamps, each chunk's video starting at the keyframe that falls on its trim
point (so nothing is decoded). When the codecs differ between chunks, or no keyframe lies on a trim point, or the
timestamps would not stay monotonic, the chunks are decoded and re-encoded (H.264 + AAC in MP4, or AAC in M4A),
trimmed at the frame (video) and the sample (audio), audio kept in step with the video at every chunk boundary.

Every file is opened with ``mediasvc.media_probe.open_local`` (local files, allow-listed demuxers only).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from mediasvc.media_probe import open_local

log = logging.getLogger("mediasvc.sessions.join")

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


class JoinError(Exception):
    """The chunks cannot be joined (no decodable media, nothing in common); retrying will not help."""


class CannotRemux(Exception):
    """Remux is not possible for these chunks; re-encode instead."""


@dataclass
class JoinPart:
    path: Path
    trim: float = 0.0  # seconds dropped from the start of this chunk (its overlap with the previous one)


@dataclass
class JoinResult:
    mode: str  # remux | reencode
    duration: float  # seconds of media written
    parts: int
    extension: str  # of the file written: the chunks' for a remux, mp4 or m4a for a re-encode


@dataclass
class _PartInfo:
    start: Fraction  # earliest timestamp of the chosen streams, seconds
    video: dict[str, Any] | None
    audio: dict[str, Any] | None
    keyframes: list[Fraction]  # video keyframe times relative to start
    frame_duration: Fraction | None
    audio_packet: Fraction | None


def _stream_signature(stream: Any) -> dict[str, Any]:
    cc = stream.codec_context
    sig: dict[str, Any] = {"codec": cc.name, "extradata": bytes(cc.extradata or b"")}
    if stream.type == "video":
        sig.update(width=cc.width, height=cc.height, pix_fmt=cc.pix_fmt)
    else:
        sig.update(rate=cc.sample_rate, channels=cc.channels if hasattr(cc, "channels") else cc.layout.nb_channels,
                   format=cc.format.name if cc.format else None)
    return sig


def _pick(container: Any) -> tuple[Any, Any]:
    video = next((s for s in container.streams.video), None)
    audio = next((s for s in container.streams.audio), None)
    if video is None and audio is None:
        raise JoinError("a chunk has no audio or video stream")
    return video, audio


def _analyse(part: JoinPart) -> _PartInfo:
    """One demux pass (no decoding): start time, keyframe times, codec parameters."""
    with open_local(part.path) as container:
        video, audio = _pick(container)
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
        return _PartInfo(
            start=start,
            video=_stream_signature(video) if video is not None else None,
            audio=_stream_signature(audio) if audio is not None else None,
            keyframes=sorted(k - start for k in keyframes_abs),
            frame_duration=frame_duration,
            audio_packet=audio_packet,
        )


def join_files(parts: list[JoinPart], out_path: Path, extension: str, *, kind: str) -> JoinResult:
    """Write the joined recording to ``out_path`` (container chosen by ``extension``)."""
    if not parts:
        raise JoinError("no chunks to join")
    infos = [_analyse(part) for part in parts]
    try:
        return _remux(parts, infos, out_path, extension)
    except CannotRemux as exc:
        log.info("joining by re-encoding: %s", exc)
        with contextlib.suppress(OSError):
            out_path.unlink()
    return _reencode(parts, infos, out_path, kind=kind)


# --- remux ---------------------------------------------------------------------------------------------------


def _cut_points(parts: list[JoinPart], infos: list[_PartInfo]) -> list[Fraction]:
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


def _remux(parts: list[JoinPart], infos: list[_PartInfo], out_path: Path, extension: str) -> JoinResult:
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
                    video, audio = _pick(container)
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


def _copy_part(container: Any, video: Any, audio: Any, out_streams: dict[str, Any], info: _PartInfo, cut: Fraction,
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


# --- re-encode -----------------------------------------------------------------------------------------------


def _video_encoder() -> str:
    for name in ("libx264", "h264", "mpeg4"):
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
                return name
            except (av.FFmpegError, ValueError):  # an encoder listed but not usable in this build
                log.debug("encoder %s is not usable", name)
    raise JoinError("no H.264 or MPEG-4 encoder is available")


class _AudioOut:
    """Encodes audio as one continuous AAC stream, padding or dropping samples to stay on the video's clock."""

    FRAME = 1024

    def __init__(self, output: Any, rate: int, layout: str) -> None:
        self.rate, self.layout = rate, layout
        self.stream = output.add_stream("aac", rate=rate, layout=layout)
        self.stream.codec_context.time_base = Fraction(1, rate)
        self.fifo = av.AudioFifo()
        self.written = 0  # samples into the fifo
        self.encoded = 0  # samples out of the fifo
        self.output = output
        self.drop = 0  # samples still to drop at the start of the current part
        self.resampler: Any = None

    def start_part(self, at_seconds: Fraction) -> None:
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        target = round(at_seconds * self.rate)
        self.drop = 0
        if target > self.written:
            self._silence(target - self.written)
        elif target < self.written:
            self.drop = self.written - target

    def _silence(self, samples: int) -> None:
        while samples > 0:
            n = min(samples, 4096)
            frame = av.AudioFrame(format="fltp", layout=self.layout, samples=n)
            frame.sample_rate = self.rate
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            self._push(frame)
            samples -= n

    def add(self, frame: Any, skip_samples: int) -> None:
        """Add a decoded frame, minus its first ``skip_samples`` (at the output rate: the trimmed overlap)."""
        for out in self.resampler.resample(frame):
            self._add_resampled(out, skip_samples)
            skip_samples = 0

    def _add_resampled(self, frame: Any, skip: int) -> None:
        skip += self.drop
        if skip >= frame.samples:
            self.drop = skip - frame.samples
            return
        self.drop = 0
        frame.pts = None
        if skip:
            staging = av.AudioFifo()
            staging.write(frame)
            staging.read(skip)
            frame = staging.read()
            if frame is None:
                return
            frame.pts = None
        self._push(frame)

    def _push(self, frame: Any) -> None:
        frame.pts = None
        self.fifo.write(frame)
        self.written += frame.samples
        self._drain(final=False)

    def end_part(self) -> None:
        if self.resampler is not None:
            for out in self.resampler.resample(None):
                self._add_resampled(out, 0)
            self.resampler = None

    def _drain(self, *, final: bool) -> None:
        while self.fifo.samples >= self.FRAME or (final and self.fifo.samples):
            frame = self.fifo.read(min(self.FRAME, self.fifo.samples))
            frame.pts = self.encoded
            frame.time_base = Fraction(1, self.rate)
            self.encoded += frame.samples
            for packet in self.stream.encode(frame):
                self.output.mux(packet)

    def close(self) -> None:
        self._drain(final=True)
        for packet in self.stream.encode(None):
            self.output.mux(packet)


def _reencode(parts: list[JoinPart], infos: list[_PartInfo], out_path: Path, *, kind: str) -> JoinResult:
    first_video = next((i for i, info in enumerate(infos) if info.video is not None), None)
    first_audio = next((i for i, info in enumerate(infos) if info.audio is not None), None)
    want_video = kind == "video" and first_video is not None
    if not want_video and first_audio is None:
        raise JoinError("the chunks hold no media this profile can keep")
    muxer, options = MUXERS["mp4"] if want_video else MUXERS["m4a"]
    rate: Fraction = Fraction(30)
    with av.open(str(out_path), mode="w", format=muxer, options=options) as output:
        video_stream = None
        width = height = 0
        if want_video:
            with open_local(parts[first_video].path) as probe:
                source = probe.streams.video[0]
                rate = Fraction(source.average_rate or source.guessed_rate or 30).limit_denominator(1001)
                width, height = source.codec_context.width, source.codec_context.height
            width, height = width - width % 2, height - height % 2
            encoder = _video_encoder()
            video_stream = output.add_stream(encoder, rate=rate)
            video_stream.width, video_stream.height, video_stream.pix_fmt = width, height, "yuv420p"
            video_stream.codec_context.time_base = 1 / rate
            if encoder == "libx264":
                video_stream.options = {"preset": "veryfast", "crf": "20", "bf": "0"}
            else:
                video_stream.bit_rate = 4_000_000
        audio_out = None
        if first_audio is not None:
            with open_local(parts[first_audio].path) as probe:
                source = probe.streams.audio[0]
                sample_rate = source.codec_context.sample_rate or 48000
                channels = source.codec_context.layout.nb_channels or 1
            audio_out = _AudioOut(output, sample_rate, "mono" if channels == 1 else "stereo")

        offset = Fraction(0)
        last_pts = -1
        frame_step = 1 / rate
        for part, info in zip(parts, infos):
            trim = Fraction(part.trim).limit_denominator(1_000_000)
            tolerance = (info.frame_duration or frame_step) / 2
            part_video_end = Fraction(0)
            part_end = Fraction(0)
            if audio_out is not None:
                audio_out.start_part(offset)
            audio_started = False
            with open_local(part.path) as container:
                video, audio = _pick(container)
                chosen = [s for s in ((video if want_video else None), audio) if s is not None]
                for frame in container.decode(*chosen):
                    if frame.pts is None or frame.time_base is None:
                        continue
                    t = frame.pts * frame.time_base - info.start
                    if isinstance(frame, av.VideoFrame):
                        duration = (frame.duration * frame.time_base) if frame.duration else frame_step
                        part_video_end = max(part_video_end, t + duration)
                        if t < trim - tolerance:
                            continue
                        pts = round((offset + t - trim) * rate)
                        if pts <= last_pts:
                            continue
                        last_pts = pts
                        out = frame.reformat(width=width, height=height, format="yuv420p")
                        out.pts = pts
                        out.time_base = 1 / rate
                        for packet in video_stream.encode(out):
                            output.mux(packet)
                    elif audio_out is not None:
                        samples_end = t + Fraction(frame.samples, frame.sample_rate)
                        part_end = max(part_end, samples_end)
                        if samples_end <= trim:
                            continue
                        skip = max(0, round((trim - t) * audio_out.rate))  # in output samples
                        if not audio_started and t > trim:  # the chunk's audio starts late: keep it in place
                            audio_out.start_part(offset + (t - trim))
                        audio_started = True
                        audio_out.add(frame, skip)
            if audio_out is not None:
                audio_out.end_part()
            end = part_video_end if want_video and part_video_end > 0 else part_end
            offset += max(end - trim, Fraction(0))
        if video_stream is not None:
            for packet in video_stream.encode(None):
                output.mux(packet)
        if audio_out is not None:
            audio_out.close()
    return JoinResult(mode="reencode", duration=float(offset), parts=len(parts),
                      extension="mp4" if want_video else "m4a")
