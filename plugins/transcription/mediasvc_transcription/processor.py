"""The ``transcribe`` step: the asset's 16 kHz audio rendition (or its original, decoded here) through the
configured engine; the transcript row and JSON, WebVTT and SRT captions, and subtitles in the HLS master."""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from mediasvc_transcription.audio import is_wav_16k_mono, to_wav
from mediasvc_transcription.captions import to_srt, to_webvtt
from mediasvc_transcription.engines import pick_engine, transcribe
from mediasvc_transcription.hls_subtitles import (
    DEFAULT_MPEGTS,
    FOLDER,
    first_pts,
    first_segment_uri,
    media_playlist,
    timestamp_map,
    with_subtitles,
)
from mediasvc_transcription.settings import TranscriptionSettings, transcription_settings
from mediasvc_transcription.silence import is_silent, wav_seconds
from mediasvc_transcription.store import TRANSCRIPTION_READY, ready_payload, save_transcript
from mediasvc.plugin import (
    EventOut, MediaServiceError, ModelMissing, PermanentProcessingError, ProcessorResult, Rendition,
    RenditionOut, Transcription, local_file, scratch_dir, serve_url,
)

log = logging.getLogger("mediasvc.transcription")

REQUEST_KEY = "transcription_request"  # asset metadata: {language, model} from POST /assets/{id}/transcribe
VTT_TYPE = "text/vtt"
SRT_TYPE = "application/x-subrip"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
TS_HEAD_BYTES = 188 * 256


def asset_base(asset: dict[str, Any]) -> str:
    return asset["storage_key"].rsplit("/", 1)[0] + "/"


async def audio_for(ctx: Any, tmp: Path) -> Path | None:
    """16 kHz mono WAV of the asset: the ``audio`` rendition when there is one, else decoded from the original.
    None when the media has no audio stream."""
    rendition = await Rendition.select(Rendition.storage_key).where(
        Rendition.asset == ctx.asset_id, Rendition.kind == "audio").first()
    if rendition is not None:
        wav = await local_file(ctx.storage, rendition["storage_key"], tmp, "audio.wav")
        if await asyncio.to_thread(is_wav_16k_mono, wav):
            return wav
    original = await local_file(ctx.storage, ctx.asset["storage_key"], tmp, "original")
    target = tmp / "decoded.wav"
    seconds = await asyncio.to_thread(to_wav, original, target)
    return target if seconds is not None else None


def empty_transcription(seconds: float, language: str, model: str, engine: str) -> Transcription:
    return Transcription(text="", language=language, duration_seconds=round(seconds, 3), segments=[],
                         model=model, engine=engine, confidence=None)


async def run_engine(engines: dict[str, Any], options: TranscriptionSettings, wav: Path | None, *,
                     language: str | None, model: str | None) -> Transcription:
    """The engine's transcript of ``wav``; an empty one for no audio or silence (the engine is not asked)."""
    engine = pick_engine(engines, options.engine)
    seconds = await asyncio.to_thread(wav_seconds, wav) if wav else 0.0
    if wav is None or await asyncio.to_thread(is_silent, wav):
        return empty_transcription(seconds, language or options.language, model or options.model, engine.name)
    try:
        return await transcribe(engine, wav, options, language=language, model=model)
    except ModelMissing as exc:  # retrying cannot help until an operator prepares the model
        raise PermanentProcessingError(exc.message) from exc
    except (ValueError, RuntimeError) as exc:  # the engine could not read the audio: it never will
        raise PermanentProcessingError(f"transcription failed: {exc}") from exc


class TranscribeProcessor:
    name = "transcribe"
    kinds = frozenset({"video", "audio"})
    # It reads the ``audio`` rendition, and writes its captions into the HLS master timed against the first
    # segment, so where the profile has ``hls`` it runs after the ladder (a profile without ``hls`` does not wait).
    needs = frozenset({"audio", "hls"})

    def cost(self, asset: dict[str, Any]) -> float:
        """About half the media's duration (tiny/base models on two threads); before the probe, a guess from
        the size at 1 Mbit/s."""
        metadata = asset.get("metadata") or {}
        seconds = ((metadata if isinstance(metadata, dict) else {}).get("probe") or {}).get("duration")
        return 1.0 + 0.5 * float(seconds or (asset.get("size_bytes") or 0) * 8 / 1_000_000)

    def __init__(self, timeout_seconds: int = 3600) -> None:
        self.timeout_seconds = timeout_seconds
        # the engine reports no progress while it runs: only the timeout bounds a step
        self.stall_seconds = timeout_seconds

    async def run(self, ctx: Any) -> ProcessorResult:
        options = transcription_settings(ctx.settings)
        request = (ctx.asset.get("metadata") or {}).get(REQUEST_KEY) or {}
        await ctx.progress(2)
        with tempfile.TemporaryDirectory(prefix="transcribe-", dir=scratch_dir(ctx)) as tmp:
            wav = await audio_for(ctx, Path(tmp))
            await ctx.progress(10)
            result = await run_engine(ctx.host.transcription_engines, options, wav,
                                      language=request.get("language") or None, model=request.get("model") or None)
        await ctx.progress(85)
        outputs = await self._store(ctx, result)
        await ctx.progress(100)
        return outputs

    async def _store(self, ctx: Any, result: Transcription) -> ProcessorResult:
        base = asset_base(ctx.asset)
        language = re.sub(r"[^a-z0-9-]", "", result.language.lower())[:20] or "und"  # it becomes a key
        transcript_key = base + "transcript.json"
        await ctx.storage.put(transcript_key, msgspec.json.encode(result), content_type="application/json")
        vtt, srt = to_webvtt(result.segments).encode(), to_srt(result.segments).encode()
        vtt_key, srt_key = base + f"captions/{language}.vtt", base + f"captions/{language}.srt"
        await ctx.storage.put(vtt_key, vtt, content_type=VTT_TYPE)
        await ctx.storage.put(srt_key, srt, content_type=SRT_TYPE)
        hls = await add_hls_subtitles(ctx, result, language)
        await _drop_stale_captions(ctx, keep={f"{language}.vtt", f"{language}.srt"})
        url = serve_url(ctx.settings, transcript_key)
        await save_transcript(result, tenant_id=ctx.asset["tenant"], asset_id=ctx.asset_id,
                              storage_key=transcript_key, url=url, emit=False)
        meta = {"language": language, "engine": result.engine, "model": result.model, "hls": hls,
                "cues": len(result.segments)}
        ready = ready_payload(result, storage_key=transcript_key, url=url, asset_id=ctx.asset_id)
        return ProcessorResult(renditions=[
            RenditionOut(kind="captions", name=f"{language}.vtt", storage_key=vtt_key, content_type=VTT_TYPE,
                         size_bytes=len(vtt), duration_seconds=result.duration_seconds, metadata=meta),
            RenditionOut(kind="captions", name=f"{language}.srt", storage_key=srt_key, content_type=SRT_TYPE,
                         size_bytes=len(srt), duration_seconds=result.duration_seconds, metadata=meta),
        ], events=[EventOut(type=TRANSCRIPTION_READY, data=ready)])


async def _drop_stale_captions(ctx: Any, keep: set[str]) -> None:
    """Captions of an earlier run in another language: their rows and files go."""
    stale = await Rendition.select(Rendition.id, Rendition.storage_key).where(
        Rendition.asset == ctx.asset_id, Rendition.kind == "captions", Rendition.name.not_in(list(keep)))
    for row in stale:
        await ctx.storage.delete(row["storage_key"])
        await Rendition.delete().where(Rendition.id == row["id"])


async def _segment_start_pts(ctx: Any, master_key: str, master: str) -> int:
    """The MPEG-TS clock at the start of the first segment of the first variant (cues are mapped to it)."""
    folder = master_key.rsplit("/", 1)[0] + "/"
    try:
        variant_uri = first_segment_uri(master)
        variant_key = folder + variant_uri if variant_uri else None
        if variant_key is None:
            return DEFAULT_MPEGTS
        variant = (await ctx.storage.get_bytes(variant_key)).decode()
        segment_uri = first_segment_uri(variant)
        if segment_uri is None:
            return DEFAULT_MPEGTS
        segment_key = variant_key.rsplit("/", 1)[0] + "/" + segment_uri
        pts = first_pts(await ctx.storage.get_bytes(segment_key, end=TS_HEAD_BYTES))
    except Exception:  # a missing or odd variant only costs the exact offset
        log.warning("could not read the first segment's PTS of %s", master_key, exc_info=True)
        return DEFAULT_MPEGTS
    return pts if pts is not None else DEFAULT_MPEGTS


async def add_hls_subtitles(ctx: Any, result: Transcription, language: str) -> str | None:
    """Write ``hls/subtitles/{lang}.vtt|.m3u8`` and rewrite the stored master with the SUBTITLES rendition.
    Returns the master's key, or None when the asset has no HLS rendition."""
    row = await Rendition.select(Rendition.storage_key).where(
        Rendition.asset == ctx.asset_id, Rendition.kind == "hls", Rendition.name == "master").first()
    if row is None:
        return None
    master_key = row["storage_key"]
    try:
        master = (await ctx.storage.get_bytes(master_key)).decode()
    except (MediaServiceError, OSError, UnicodeDecodeError):
        log.warning("HLS master %s of asset %s is missing: no subtitles added", master_key, ctx.asset_id)
        return None
    folder = master_key.rsplit("/", 1)[0] + "/"
    mpegts = await _segment_start_pts(ctx, master_key, master)
    vtt = to_webvtt(result.segments, header=timestamp_map(mpegts)).encode()
    await ctx.storage.put(f"{folder}{FOLDER}/{language}.vtt", vtt, content_type=VTT_TYPE)
    playlist = media_playlist(f"{language}.vtt", result.duration_seconds)
    await ctx.storage.put(f"{folder}{FOLDER}/{language}.m3u8", playlist.encode(), content_type=PLAYLIST_TYPE)
    updated = with_subtitles(master, language, f"{FOLDER}/{language}.m3u8")
    if updated != master:  # one put: readers see the old master or the new one, never half of it
        await ctx.storage.put(master_key, updated.encode(), content_type=PLAYLIST_TYPE)
    return master_key
