"""Joining by decoding and re-encoding (H.264 + AAC in MP4, or AAC in M4A): chunks trimmed at the frame (video)
and the sample (audio), audio kept in step with the video at every chunk boundary. Used when a remux is not
possible (codecs differ between chunks, no keyframe on a trim point)."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from mediasvc_video.join_parts import MUXERS, PartInfo, pick_streams
from mediasvc_video.probe_local import open_local
from mediasvc.plugin import JoinError, JoinPart, JoinResult

log = logging.getLogger("mediasvc.sessions.join")


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


def reencode(parts: list[JoinPart], infos: list[PartInfo], out_path: Path, *, kind: str) -> JoinResult:
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
                video, audio = pick_streams(container)
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
