"""``hls``: an adaptive HLS ladder, 360p (800k) / 480p (1400k) / 720p (2800k) / 1080p (5000k) H.264 + AAC 128k
(one audio track muxed into every rung), never upscaled past the source.

The source is demuxed and decoded ONCE; every decoded frame is reformatted once per rung and fed to that rung's
libx264 encoder, each rung muxed by FFmpeg's ``hls`` muxer into ~4 s MPEG-TS segments. Keyframes line up across
rungs: every encoder gets ``pict_type = I`` on the same frames (every 4 s of source pts), GOP = fps*4 and
``scenecut=0``, and the source's own I-frames are cleared. The master playlist is written here, with BANDWIDTH
(peak segment bitrate), AVERAGE-BANDWIDTH, RESOLUTION, FRAME-RATE and CODECS read from each rung's actual SPS.

Keys: ``hls/master.m3u8``, ``hls/{rung}/index.m3u8``, ``hls/{rung}/seg_NNN.ts`` next to the original. Everything
is written to a temp dir first, then uploaded rung by rung, smallest first (segments, then the rung's playlist),
master last; objects under ``hls/`` left by an earlier run (more segments, a dropped rung) are deleted afterwards.
As soon as a rung's playlist is stored, a ``rendition.ready`` event names it (asset id, rung, resolution, bandwidth,
playlist key), so a player can start on the first rung while the rest of the ladder is still being stored.
"""

from __future__ import annotations

import math
import posixpath
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.frame import PictureType

from mediasvc_video.hls_ladder import (
    Rung,
    carry_subtitles,
    codecs_string,
    master_playlist,
    parse_media_playlist,
    plan_ladder,
    sps_profile_level,
)
from mediasvc_video.media import local_input, open_media, output_key, run_with_progress, temp_dir, upload
from mediasvc_video.mp4 import _rotate
from mediasvc_video.probe import VideoInput
from mediasvc.plugin import PermanentProcessingError, ProcessorResult, RenditionOut

AUDIO_BITRATE = 128_000
SEGMENT_SECONDS = 4
DEFAULT_PRESET = "veryfast"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
RENDITION_READY = "rendition.ready"  # the event type published per stored rung


def _hls_settings(settings: Any) -> dict[str, Any]:
    raw = dict(getattr(settings, "plugins", {}).get("video", {}) or {})
    return {"preset": str(raw.get("hls_preset", DEFAULT_PRESET))}


class _RungOut:
    """One rung's encoder(s) and hls muxer."""

    def __init__(self, rung: Rung, folder: Path, rate: Fraction, time_base: Fraction, preset: str,
                 audio: dict[str, Any] | None) -> None:
        self.rung = rung
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.container = av.open(
            str(folder / "index.m3u8"), "w", format="hls",
            options={"hls_time": str(SEGMENT_SECONDS), "hls_playlist_type": "vod", "hls_list_size": "0",
                     "hls_segment_type": "mpegts", "hls_flags": "independent_segments",
                     "hls_segment_filename": str(folder / "seg_%03d.ts")})
        gop = max(1, math.ceil(float(rate) * SEGMENT_SECONDS - 1e-6))  # >= 4 s: only the forced ones cut
        self.video = self.container.add_stream("libx264", rate=rate, options={
            "preset": preset, "profile": "high", "g": str(gop), "keyint_min": str(gop),
            "sc_threshold": "0", "x264-params": "scenecut=0:open-gop=0",
            "maxrate": str(int(rung.bitrate * 1.07)), "bufsize": str(int(rung.bitrate * 1.5)),
        })
        self.video.width, self.video.height, self.video.pix_fmt = rung.width, rung.height, "yuv420p"
        self.video.bit_rate = rung.bitrate
        self.video.thread_type = "AUTO"
        self.video.codec_context.time_base = time_base
        self.audio = None
        if audio is not None:
            self.audio = self.container.add_stream("aac", rate=audio["rate"])
            self.audio.layout = audio["layout"]
            self.audio.bit_rate = AUDIO_BITRATE

    def encode_video(self, frame: Any) -> None:
        self.container.mux(self.video.encode(frame))

    def encode_audio(self, frame: Any) -> None:
        if self.audio is not None:
            self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        self.container.close()


def transcode_ladder(path: Path, out_dir: Path, preset: str, report: Any) -> dict[str, Any]:
    """Decode ``path`` once and write every rung under ``out_dir/{rung}/``; returns the plan and stats."""
    with open_media(path) as src:
        source = VideoInput(src)
        vin, ain, duration, rotation = source.video, source.audio, source.duration, source.rotation
        shown_w, shown_h = source.shown_width, source.shown_height
        rungs = plan_ladder(shown_w, shown_h)
        rate = vin.average_rate or vin.guessed_rate or Fraction(30)
        rate = Fraction(rate).limit_denominator(1001)
        time_base = vin.time_base or Fraction(1, 90000)

        audio_spec = resampler = None
        if ain is not None:
            channels = min(2, ain.codec_context.channels or 2)
            audio_spec = {"rate": ain.codec_context.sample_rate or 48000,
                          "layout": "stereo" if channels == 2 else "mono"}
            resampler = av.AudioResampler(format="fltp", layout=audio_spec["layout"], rate=audio_spec["rate"])

        outs = [_RungOut(r, out_dir / r.name, rate, time_base, preset, audio_spec) for r in rungs]
        try:
            samples = 0

            def encode_audio(resampled: list[Any]) -> None:
                nonlocal samples
                for f in resampled:  # sample-count timestamps from zero, like the video's
                    f.pts, f.time_base = samples, Fraction(1, f.sample_rate)
                    samples += f.samples
                    for out in outs:
                        out.encode_audio(f)

            start = vin.start_time or 0
            last_pts = None
            frames = 0
            next_key = 0.0  # seconds of (zero-based) pts at which every rung gets a forced keyframe
            streams = [s for s in (vin, ain) if s is not None]
            for packet in src.demux(streams):
                for frame in packet.decode():
                    if packet.stream is vin:
                        if frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
                            continue  # drop frames with no or repeated timestamps
                        last_pts = frame.pts
                        pts = last_pts - start
                        seconds = float(pts * time_base)
                        force = seconds + 1e-6 >= next_key
                        if force:
                            while next_key <= seconds + 1e-6:
                                next_key += SEGMENT_SECONDS
                        kind = PictureType.I if force else PictureType.NONE
                        frame.pict_type = PictureType.NONE  # source I-frames must not force keyframes
                        for out in outs:
                            if rotation:
                                scaled = _rotate(frame, rotation, out.rung.width, out.rung.height)
                                scaled = scaled.reformat(format="yuv420p")
                            else:
                                scaled = frame.reformat(width=out.rung.width, height=out.rung.height,
                                                        format="yuv420p")
                            scaled.pts, scaled.time_base = pts, time_base
                            scaled.pict_type = kind
                            out.encode_video(scaled)
                        frames += 1
                        if duration:
                            report(min(95.0, 95.0 * seconds / duration))
                    elif resampler is not None:
                        encode_audio(resampler.resample(frame))
            if frames == 0:
                raise PermanentProcessingError("no video frame could be decoded")
            for out in outs:
                out.encode_video(None)
            if resampler is not None:
                encode_audio(resampler.resample(None))
                for out in outs:
                    out.encode_audio(None)
        finally:
            for out in outs:
                out.close()
    return {"rungs": rungs, "frames": frames, "fps": float(rate), "has_audio": audio_spec is not None,
            "duration": duration}


def _rung_stats(folder: Path, rung: Rung) -> dict[str, Any]:
    """Measured numbers of a finished rung: segments, durations, peak/average bitrate, codec string."""
    segments = parse_media_playlist((folder / "index.m3u8").read_text())
    if not segments:
        raise PermanentProcessingError(f"rung {rung.name} produced no segments")
    total_bytes = total_seconds = 0.0
    peak = 0.0
    for duration, uri in segments:
        size = (folder / uri).stat().st_size
        total_bytes += size
        total_seconds += duration
        if duration > 0.5:  # a very short last segment overstates its rate
            peak = max(peak, size * 8 / duration)
    average = total_bytes * 8 / total_seconds if total_seconds else 0.0
    peak = max(peak, average)
    profile_level = sps_profile_level((folder / segments[0][1]).read_bytes()[:1 << 16])
    return {"segments": segments, "peak": math.ceil(peak), "average": math.ceil(average),
            "duration": total_seconds, "profile_level": profile_level}


async def _stored_text(ctx: Any, key: str) -> str | None:
    """A small stored text file (the previous master), or None when there is none."""
    if await ctx.storage.head(key) is None:
        return None
    return (await ctx.storage.get_bytes(key)).decode("utf-8", "replace")


async def _rendition_ready(ctx: Any, rung: Rung, stats: dict[str, Any], playlist_key: str) -> None:
    """``rendition.ready`` for a rung whose segments and playlist are all stored (contexts without ``emit``, such
    as a bare test context, publish nothing)."""
    emit = getattr(ctx, "emit", None)
    if emit is None:
        return
    await emit(RENDITION_READY, {
        "kind": "hls", "rung": rung.name, "resolution": f"{rung.width}x{rung.height}", "width": rung.width,
        "height": rung.height, "bandwidth": stats["peak"], "average_bandwidth": stats["average"],
        "playlist_key": playlist_key, "segments": len(stats["segments"]),
        "duration_seconds": round(stats["duration"], 3),
    })


class HlsProcessor:
    name = "hls"
    kinds = frozenset({"video"})
    timeout_seconds = 8 * 3600  # up to 4 h of input; four encoders at once

    async def run(self, ctx: Any) -> ProcessorResult:
        preset = _hls_settings(ctx.settings)["preset"]
        base = output_key(ctx, "hls")
        with temp_dir() as tmp:
            async with local_input(ctx) as path:
                result = await run_with_progress(ctx, lambda report: transcode_ladder(path, tmp, preset, report))
            rungs: list[Rung] = result["rungs"]
            stats = {r.name: _rung_stats(tmp / r.name, r) for r in rungs}
            variants = []
            for r in rungs:
                s = stats[r.name]
                variants.append({"name": r.name, "uri": f"{r.name}/index.m3u8", "width": r.width,
                                 "height": r.height, "bandwidth": s["peak"], "average_bandwidth": s["average"],
                                 "frame_rate": result["fps"],
                                 "codecs": codecs_string(s["profile_level"], result["has_audio"])})
            master_text, kept = carry_subtitles(await _stored_text(ctx, f"{base}/master.m3u8"),
                                                master_playlist(variants))
            (tmp / "master.m3u8").write_text(master_text)
            await ctx.progress(96)

            written: set[str] = set()
            out: list[RenditionOut] = []
            for r in rungs:
                folder = tmp / r.name
                size = 0
                for _, uri in stats[r.name]["segments"]:
                    key = f"{base}/{r.name}/{uri}"
                    info = await upload(ctx, key, folder / uri, SEGMENT_TYPE)
                    size += info.size
                    written.add(key)
                key = f"{base}/{r.name}/index.m3u8"
                index = await upload(ctx, key, folder / "index.m3u8", PLAYLIST_TYPE)
                written.add(key)
                s = stats[r.name]
                await _rendition_ready(ctx, r, s, key)
                out.append(RenditionOut(
                    kind="hls", name=r.name, storage_key=key, content_type=PLAYLIST_TYPE, size_bytes=index.size,
                    width=r.width, height=r.height, duration_seconds=round(s["duration"], 3), bitrate=r.bitrate,
                    metadata={"segments": len(s["segments"]), "segment_bytes": size, "peak_bandwidth": s["peak"],
                              "average_bandwidth": s["average"], "codecs": codecs_string(s["profile_level"],
                                                                                          result["has_audio"]),
                              "audio_bitrate": AUDIO_BITRATE if result["has_audio"] else None}))
            master_key = f"{base}/master.m3u8"
            info = await upload(ctx, master_key, tmp / "master.m3u8", PLAYLIST_TYPE)  # last: rungs are all there
            written.add(master_key)
        kept_folders = tuple(f"{base}/{posixpath.dirname(uri)}/" for uri in kept if "/" in uri)
        kept_keys = {f"{base}/{uri}" for uri in kept}
        keep = written | kept_keys  # and the folders of carried-over subtitles (their playlist and cues)
        stale = [o.key async for o in ctx.storage.list(base + "/")
                 if o.key not in keep and not o.key.startswith(kept_folders)]
        for key in stale:
            await ctx.storage.delete(key)
        await ctx.progress(100)
        master = RenditionOut(
            kind="hls", name="master", storage_key=master_key, content_type=PLAYLIST_TYPE, size_bytes=info.size,
            width=rungs[-1].width, height=rungs[-1].height,
            duration_seconds=round(stats[rungs[0].name]["duration"], 3), bitrate=None,
            metadata={"rungs": [v["name"] for v in variants], "segment_seconds": SEGMENT_SECONDS,
                      "variants": variants, "audio": "aac 128k muxed into every rung" if result["has_audio"]
                      else None})
        return ProcessorResult(renditions=[master, *out])
