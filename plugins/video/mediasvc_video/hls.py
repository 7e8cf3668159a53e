"""``hls``: an adaptive HLS ladder, 360p (800k) / 480p (1400k) / 720p (2800k) / 1080p (5000k) H.264 + AAC 128k
(one audio track muxed into every rung), never upscaled past the source.

Playable early: the lowest rung is encoded first, in a pass of its own (``hls_encode.transcode_ladder``: one
decode, each rung on its own thread), then stored and published at once: its segments and playlist, then a master
listing it alone, then ``ctx.publish_rendition`` records the rung and the master so the playback API hands out an
HLS URL while the asset is still ``processing``, and ``rendition.ready`` names the rung. The other rungs follow in
a second pass over the source (one more decode: about 10 % more CPU for a 1080p ladder); each is stored and
published the same way, the master growing by one variant each time (in ladder order, lowest first). The master
carries BANDWIDTH (peak segment bitrate), AVERAGE-BANDWIDTH, RESOLUTION, FRAME-RATE and CODECS read from each
rung's actual SPS. A ladder of one rung is one pass; so is every ladder with ``[plugins.video]
hls_first_rung_early = false`` (less CPU; nothing playable until the whole ladder is there).

Keys: ``hls/master.m3u8``, ``hls/{rung}/index.m3u8``, ``hls/{rung}/seg_NNN.ts`` next to the original. A rung's
segments go up before its playlist, and its playlist before the master that lists it; objects under ``hls/`` left
by an earlier run (more segments, a dropped rung) are deleted at the end. The ``ProcessorResult`` repeats every
rendition published on the way (the core replaces each by (kind, name)).
"""

from __future__ import annotations

import math
import posixpath
from pathlib import Path
from typing import Any

from mediasvc_video.hls_encode import AUDIO_BITRATE, SEGMENT_SECONDS, transcode_ladder
from mediasvc_video.hls_ladder import (
    Rung,
    carry_subtitles,
    codecs_string,
    master_playlist,
    parse_media_playlist,
    plan_ladder,
    sps_profile_level,
)
from mediasvc_video.media import local_input, output_key, run_with_progress, temp_dir, upload
from mediasvc.plugin import PermanentProcessingError, ProcessorResult, RenditionOut

__all__ = ["AUDIO_BITRATE", "SEGMENT_SECONDS", "HlsProcessor", "transcode_ladder"]

DEFAULT_PRESET = "veryfast"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
RENDITION_READY = "rendition.ready"  # the event type published per stored rung
DECODE_WEIGHT = 0.3  # a decode's cost against encoding a rung of the same pixels (for progress only)


def _hls_settings(settings: Any) -> dict[str, Any]:
    raw = dict(getattr(settings, "plugins", {}).get("video", {}) or {})
    return {"preset": str(raw.get("hls_preset", DEFAULT_PRESET)),
            "early": bool(raw.get("hls_first_rung_early", True))}


def _first_share(asset: dict[str, Any]) -> float:
    """The first pass's share of the encoding work (for progress), from the probed size (1080p if unknown)."""
    probe = (asset.get("metadata") or {}).get("probe") or {}
    width, height = int(probe.get("width") or 1920), int(probe.get("height") or 1080)
    rungs = plan_ladder(width, height)
    if len(rungs) < 2:
        return 1.0
    decode = DECODE_WEIGHT * width * height
    pixels = [r.width * r.height for r in rungs]
    return (decode + pixels[0]) / (2 * decode + sum(pixels))


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


class _Publisher:
    """Stores finished rungs one at a time and keeps the master (and the published renditions) in step."""

    def __init__(self, ctx: Any, base: str, tmp: Path) -> None:
        self.ctx, self.base, self.tmp = ctx, base, tmp
        self.variants: list[dict[str, Any]] = []
        self.renditions: list[RenditionOut] = []
        self.written: set[str] = set()
        self.kept: list[str] = []
        self.master: RenditionOut | None = None

    async def add(self, rung: Rung, result: dict[str, Any]) -> None:
        ctx, base, folder = self.ctx, self.base, self.tmp / rung.name
        s = _rung_stats(folder, rung)
        codecs = codecs_string(s["profile_level"], result["has_audio"])
        size = 0
        for _, uri in s["segments"]:
            key = f"{base}/{rung.name}/{uri}"
            size += (await upload(ctx, key, folder / uri, SEGMENT_TYPE)).size
            self.written.add(key)
        key = f"{base}/{rung.name}/index.m3u8"
        index = await upload(ctx, key, folder / "index.m3u8", PLAYLIST_TYPE)
        self.written.add(key)
        rendition = RenditionOut(
            kind="hls", name=rung.name, storage_key=key, content_type=PLAYLIST_TYPE, size_bytes=index.size,
            width=rung.width, height=rung.height, duration_seconds=round(s["duration"], 3), bitrate=rung.bitrate,
            metadata={"segments": len(s["segments"]), "segment_bytes": size, "peak_bandwidth": s["peak"],
                      "average_bandwidth": s["average"], "codecs": codecs,
                      "audio_bitrate": AUDIO_BITRATE if result["has_audio"] else None})
        self.renditions.append(rendition)
        self.variants.append({"name": rung.name, "uri": f"{rung.name}/index.m3u8", "width": rung.width,
                              "height": rung.height, "bandwidth": s["peak"], "average_bandwidth": s["average"],
                              "frame_rate": result["fps"], "codecs": codecs, "duration": s["duration"],
                              "target": rung.bitrate})
        self.variants.sort(key=lambda v: v["target"])  # the ladder's order (measured peaks of a short clip cross)
        await self._write_master(result)
        publish = getattr(ctx, "publish_rendition", None)  # contexts from before plugin API 1.1 have none
        if publish is not None:
            await publish(rendition)
            await publish(self.master)
        await _rendition_ready(ctx, rung, s, key)

    async def _write_master(self, result: dict[str, Any]) -> None:
        master_key = f"{self.base}/master.m3u8"
        text, self.kept = carry_subtitles(await _stored_text(self.ctx, master_key), master_playlist(self.variants))
        (self.tmp / "master.m3u8").write_text(text)
        info = await upload(self.ctx, master_key, self.tmp / "master.m3u8", PLAYLIST_TYPE)
        self.written.add(master_key)
        top = max(self.renditions, key=lambda r: r.height or 0)
        self.master = RenditionOut(
            kind="hls", name="master", storage_key=master_key, content_type=PLAYLIST_TYPE, size_bytes=info.size,
            width=top.width, height=top.height, duration_seconds=round(self.variants[0]["duration"], 3),
            bitrate=None,
            metadata={"rungs": [v["name"] for v in self.variants], "segment_seconds": SEGMENT_SECONDS,
                      "variants": [{k: v for k, v in var.items() if k not in ("duration", "target")}
                                   for var in self.variants],
                      "audio": "aac 128k muxed into every rung" if result["has_audio"] else None})


class HlsProcessor:
    name = "hls"
    kinds = frozenset({"video"})
    timeout_seconds = 8 * 3600  # up to 4 h of input; four encoders at once

    async def run(self, ctx: Any) -> ProcessorResult:
        options = _hls_settings(ctx.settings)
        preset = options["preset"]
        base = output_key(ctx, "hls")
        share = _first_share(ctx.asset) if options["early"] else 1.0
        with temp_dir(ctx) as tmp:
            published = _Publisher(ctx, base, tmp)
            async with local_input(ctx) as path:
                first = await run_with_progress(ctx, lambda report: transcode_ladder(
                    path, tmp, preset, lambda p: report(93 * share * p / 100),
                    part="first" if options["early"] else "all"))
                for rung in first["rungs"]:  # with "first": playable from here on
                    await published.add(rung, first)
                if options["early"] and len(first["plan"]) > 1:
                    rest = await run_with_progress(ctx, lambda report: transcode_ladder(
                        path, tmp, preset, lambda p: report(93 * (share + (1 - share) * p / 100)), part="rest"))
                    for rung in rest["rungs"]:
                        await ctx.progress(93 + 6 * len(published.renditions) / len(first["plan"]))
                        await published.add(rung, rest)
        kept_folders = tuple(f"{base}/{posixpath.dirname(uri)}/" for uri in published.kept if "/" in uri)
        keep = published.written | {f"{base}/{uri}" for uri in published.kept}  # and carried subtitles' folders
        stale = [o.key async for o in ctx.storage.list(base + "/")
                 if o.key not in keep and not o.key.startswith(kept_folders)]
        for key in stale:
            await ctx.storage.delete(key)
        await ctx.progress(100)
        if published.master is None:
            raise PermanentProcessingError("the ladder produced no rung")
        return ProcessorResult(renditions=[published.master, *published.renditions])
