"""``mp4``: H.264 (libx264, CRF 23, preset medium) + AAC 128k with ``+faststart``, scaled down (never up) to
fit the configured box with even dimensions, rotation applied. Output ``video.mp4``. A source that browsers
already play is copied instead (``mediasvc_video.remux``); the rendition's metadata says which: ``method`` is
``copy`` or ``encode``, with the ``reason`` it was encoded."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from mediasvc_video.cost import encode_cost, probe_of
from mediasvc_video.limits import VideoLimits, limits_from
from mediasvc_video.media import (
    decoded_frames,
    local_input,
    open_media,
    output_key,
    run_with_progress,
    temp_dir,
    upload,
)
from mediasvc_video.probe import VideoInput
from mediasvc_video.remux import reason_to_encode, remux
from mediasvc.plugin import PermanentProcessingError, ProcessorResult, RenditionOut

AUDIO_BITRATE = 128_000


def fit(width: int, height: int, max_long: int, max_short: int) -> tuple[int, int]:
    """Scale down to fit max_long x max_short in either orientation; never up; even numbers."""
    long_side, short_side = max(width, height), min(width, height)
    scale = min(1.0, max_long / long_side, max_short / short_side)
    w = max(2, int(width * scale) // 2 * 2)
    h = max(2, int(height * scale) // 2 * 2)
    return w, h


def _rotate(frame: Any, rotation: int, out_w: int, out_h: int) -> Any:
    """Scale to the output size (still unrotated, so the rotation works on the small picture), then apply the
    counter-clockwise display rotation to the pixels with Pillow. Only for rotated sources."""
    pre_w, pre_h = (out_h, out_w) if rotation in (90, 270) else (out_w, out_h)
    image = frame.reformat(width=pre_w, height=pre_h, format="rgb24").to_image().rotate(rotation, expand=True)
    return av.VideoFrame.from_image(image)


def transcode(path: Path, target: Path, limits: VideoLimits, report: Any) -> dict[str, Any]:
    with open_media(path) as src:
        source = VideoInput(src)
        vin, ain, duration, rotation = source.video, source.audio, source.duration, source.rotation
        shown_w, shown_h = source.shown_width, source.shown_height
        out_w, out_h = fit(shown_w, shown_h, limits.mp4_max_width, limits.mp4_max_height)

        with av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
            rate = vin.average_rate or vin.guessed_rate or 30
            vout = dst.add_stream("libx264", rate=rate, options={"crf": "23", "preset": "medium"})
            vout.width, vout.height, vout.pix_fmt = out_w, out_h, "yuv420p"
            vout.thread_type = "AUTO"
            vout.codec_context.time_base = vin.time_base  # keep the source timestamps (variable frame rate)
            aout = resampler = None
            if ain is not None:
                channels = min(2, ain.codec_context.channels or 2)
                rate_hz = ain.codec_context.sample_rate or 48000
                aout = dst.add_stream("aac", rate=rate_hz)
                aout.layout = "stereo" if channels == 2 else "mono"
                aout.bit_rate = AUDIO_BITRATE
                resampler = av.AudioResampler(format="fltp", layout=aout.layout.name, rate=rate_hz)

            def encode_audio(resampled: list[Any], count: int) -> int:
                for f in resampled:  # timestamps count samples from zero, as the video's start from zero
                    f.pts, f.time_base = count, Fraction(1, f.sample_rate)
                    count += f.samples
                    dst.mux(aout.encode(f))
                return count

            samples = 0
            frames = 0
            for frame, pts in decoded_frames(src, vin, ain):
                if pts is not None:
                    if rotation:
                        frame = _rotate(frame, rotation, out_w, out_h)
                    frame = frame.reformat(width=out_w, height=out_h, format="yuv420p")
                    frame.pts, frame.time_base = pts, vin.time_base
                    dst.mux(vout.encode(frame))
                    frames += 1
                    if duration and frame.time is not None:
                        report(min(99.0, 100.0 * frame.time / duration))
                elif aout is not None:
                    samples = encode_audio(resampler.resample(frame), samples)
            if frames == 0:
                raise PermanentProcessingError("no video frame could be decoded")
            dst.mux(vout.encode(None))
            if aout is not None:
                encode_audio(resampler.resample(None), samples)
                dst.mux(aout.encode(None))
    with av.open(str(target), options={"protocol_whitelist": "file"}) as check:
        out_duration = check.duration / 1_000_000 if check.duration else duration
        bitrate = check.bit_rate or None
    return {"width": out_w, "height": out_h, "duration": out_duration, "bitrate": bitrate,
            "has_audio": aout is not None}


def _summary(target: Path, fallback_duration: float | None) -> tuple[float | None, int | None]:
    with av.open(str(target), options={"protocol_whitelist": "file"}) as check:
        return (check.duration / 1_000_000 if check.duration else fallback_duration), (check.bit_rate or None)


def make_mp4(path: Path, target: Path, limits: VideoLimits, report: Any) -> dict[str, Any]:
    """Copy the source when browsers play it as it is, else ``transcode``; says which (``method``, ``reason``)."""
    with open_media(path) as src:
        source = VideoInput(src)
        shown = (source.shown_width, source.shown_height)
        reason = reason_to_encode(src, limits, shown=shown)
        if reason is None:
            copied = remux(src, target, report, source.duration)
            duration, bitrate = _summary(target, source.duration)
            return {"width": shown[0], "height": shown[1], "duration": duration, "bitrate": bitrate,
                    "has_audio": copied["has_audio"], "method": "copy", "reason": None}
    return {**transcode(path, target, limits, report), "method": "encode", "reason": reason}


class Mp4Processor:
    name = "mp4"
    kinds = frozenset({"video"})
    timeout_seconds = 6 * 3600  # up to 4 h of input at ~1x realtime, with room
    needs = frozenset({"probe"})  # a file the probe rejects is not worth encoding

    def cost(self, asset: dict[str, Any]) -> float:
        probe = probe_of(asset)
        if probe.get("video_codec") == "h264" and probe.get("audio_codec") in ("aac", None):
            return 1.0 + 0.02 * encode_cost(asset)  # most likely a copy
        return encode_cost(asset)

    async def run(self, ctx: Any) -> ProcessorResult:
        limits = limits_from(ctx.settings)
        with temp_dir(ctx) as tmp:
            target = tmp / "video.mp4"
            async with local_input(ctx) as path:
                result = await run_with_progress(ctx, lambda report: make_mp4(path, target, limits, report))
            key = output_key(ctx, "video.mp4")
            info = await upload(ctx, key, target, "video/mp4")
        await ctx.progress(100)
        return ProcessorResult(renditions=[RenditionOut(
            kind="mp4", name="default", storage_key=key, content_type="video/mp4", size_bytes=info.size,
            width=result["width"], height=result["height"],
            duration_seconds=round(result["duration"], 3) if result["duration"] else None,
            bitrate=result["bitrate"],
            metadata={"video_codec": "h264", "audio_codec": "aac" if result["has_audio"] else None,
                      "method": result["method"], **({"reason": result["reason"]} if result["reason"] else {})})])
