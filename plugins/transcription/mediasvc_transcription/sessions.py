"""Recording sessions: each chunk is transcribed by its own job as it arrives, and the session transcript is
stitched from the chunk transcripts once the session is completed and every chunk has one.

A chunk's transcript is stored beside the chunks (``{tenant}/sessions/{id}/transcripts/chunk_NNNN.json``, so
deleting the session removes it) with the chunk's sha256: a replaced chunk is transcribed again. The stitched
transcript is a ``transcripts`` row with ``session`` set (event ``transcription.ready`` with ``session_id``).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any
from uuid import UUID

import msgspec

from mediasvc_transcription.audio import to_wav
from mediasvc_transcription.captions import to_srt, to_webvtt
from mediasvc_transcription.processor import run_engine
from mediasvc_transcription.settings import transcription_settings
from mediasvc_transcription.stitch import ChunkText, stitch
from mediasvc_transcription.store import save_transcript
from mediasvc.plugin import (
    Chunk, PermanentProcessingError, RecordingSession, Transcription, create_queue, enqueue, kick_events,
    local_file, scratch_dir, serve_url,
)

log = logging.getLogger("mediasvc.transcription")

CHUNK_JOB = "transcription.chunk"
SESSION_JOB = "transcription.session"


class ChunkTranscript(msgspec.Struct):
    chunk_id: UUID
    sequence_index: int
    sha256: str
    duration_seconds: float
    transcription: Transcription | None = None
    error: str | None = None  # the chunk could not be transcribed (it is left out of the session transcript)


def chunk_transcript_key(chunk_key: str) -> str:
    folder, name = chunk_key.rsplit("/", 1)
    return f"{folder}/transcripts/{PurePosixPath(name).stem}.json"


def effective_overlap(chunk: dict[str, Any], indexes: set[int]) -> float:
    """The overlap a chunk shares with the previous one: only trimmed when that chunk is there."""
    index = chunk["sequence_index"]
    if index == 0 or index - 1 not in indexes:
        return 0.0
    return max(float(chunk["overlap_seconds"] or 0.0), 0.0)


def session_transcript_key(chunk_key: str) -> str:
    return chunk_key.rsplit("/", 1)[0] + "/transcripts/session.json"


SESSION_CAPTIONS = {"vtt": (to_webvtt, "text/vtt"), "srt": (to_srt, "application/x-subrip")}


def session_caption_key(transcript_key: str, suffix: str) -> str:
    """``…/transcripts/session.vtt`` beside the stitched transcript's JSON."""
    return f"{transcript_key.rsplit('.', 1)[0]}.{suffix}"


async def read_chunk_transcript(storage: Any, chunk: dict[str, Any]) -> ChunkTranscript | None:
    """The stored transcript of this chunk's current bytes, or None."""
    key = chunk_transcript_key(chunk["storage_key"])
    if await storage.head(key) is None:
        return None
    stored = msgspec.json.decode(await storage.get_bytes(key), type=ChunkTranscript)
    return stored if stored.sha256 == chunk["sha256"] else None


async def transcribe_chunk(ctx: dict[str, Any], *, chunk_id: str) -> dict[str, Any]:
    """The ``transcription.chunk`` job."""
    settings, storage = ctx["settings"], ctx["storage"]
    chunk = await Chunk.select(Chunk.all_columns(), Chunk.session.profile.as_alias("profile")).where(
        Chunk.id == UUID(chunk_id)).first()
    if chunk is None:
        return {"status": "gone"}
    profile = settings.profiles.get(chunk["profile"])
    if profile is None or "transcribe" not in profile.steps:
        return {"status": "skipped", "reason": f"profile {chunk['profile']!r} does not transcribe"}
    if await storage.head(chunk["storage_key"]) is None:  # removed meanwhile (or another deployment's storage)
        return {"status": "missing"}
    if await read_chunk_transcript(storage, chunk) is not None:
        await _maybe_stitch(ctx, chunk["session"])
        return {"status": "done"}
    options = transcription_settings(settings)
    result = ChunkTranscript(chunk_id=chunk["id"], sequence_index=chunk["sequence_index"], sha256=chunk["sha256"],
                             duration_seconds=float(chunk["duration_seconds"] or 0.0))
    with tempfile.TemporaryDirectory(prefix="chunk-", dir=scratch_dir(ctx)) as tmp:
        try:
            source = await local_file(storage, chunk["storage_key"], Path(tmp), "chunk")
            wav = Path(tmp) / "chunk.wav"
            seconds = await asyncio.to_thread(to_wav, source, wav)
            engines = ctx["host"].transcription_engines
            result.transcription = await run_engine(engines, options, wav if seconds is not None else None,
                                                    language=None, model=None)
            result.duration_seconds = result.duration_seconds or (seconds or 0.0)
        except PermanentProcessingError as exc:
            result.error = str(exc)
            log.warning("chunk %s of session %s cannot be transcribed: %s", chunk["sequence_index"],
                        chunk["session"], exc)
    await storage.put(chunk_transcript_key(chunk["storage_key"]), msgspec.json.encode(result),
                      content_type="application/json")
    await _maybe_stitch(ctx, chunk["session"])
    return {"status": "failed" if result.error else "done", "words": len(
        (result.transcription.text if result.transcription else "").split())}


async def _maybe_stitch(ctx: dict[str, Any], session_id: UUID) -> None:
    session = await RecordingSession.select(RecordingSession.status).where(RecordingSession.id == session_id).first()
    if session is not None and session["status"] == "completed":
        await stitch_session(ctx, session_id=str(session_id))


async def stitch_session(ctx: dict[str, Any], *, session_id: str) -> dict[str, Any]:
    """The ``transcription.session`` job: stitch once every chunk has a transcript (a chunk job finishing later
    calls this again). Safe to re-run: the session's transcript row is replaced."""
    settings, storage = ctx["settings"], ctx["storage"]
    sid = UUID(session_id)
    session = await RecordingSession.select(RecordingSession.id, RecordingSession.tenant,
                                            RecordingSession.status).where(RecordingSession.id == sid).first()
    if session is None or session["status"] != "completed":
        return {"status": "skipped"}
    chunks = await Chunk.select().where(Chunk.session == sid).order_by(Chunk.sequence_index)
    if not chunks:
        return {"status": "skipped", "reason": "no chunks"}
    indexes = {c["sequence_index"] for c in chunks}
    texts, waiting = [], []
    for chunk in chunks:
        stored = await read_chunk_transcript(storage, chunk)
        if stored is None:
            waiting.append(chunk["sequence_index"])
        elif stored.transcription is not None:
            texts.append(ChunkText(sequence_index=chunk["sequence_index"], duration=stored.duration_seconds,
                                   overlap=effective_overlap(chunk, indexes), transcription=stored.transcription))
    if waiting:
        return {"status": "waiting", "chunks": waiting}
    result = stitch(texts) if texts else Transcription(text="", language="", duration_seconds=0.0, segments=[],
                                                       model="", engine="")
    key = session_transcript_key(chunks[0]["storage_key"])
    await storage.put(key, msgspec.json.encode(result), content_type="application/json")
    for suffix, (render, content_type) in SESSION_CAPTIONS.items():  # captions for the whole interview
        await storage.put(session_caption_key(key, suffix), render(result.segments).encode(),
                          content_type=content_type)
    # a session is no processing step: its row and transcription.ready are written together, here
    await save_transcript(result, tenant_id=session["tenant"], session_id=sid, storage_key=key,
                          url=serve_url(settings, key))
    await kick_events(ctx["queue"])
    return {"status": "done", "words": len(result.text.split())}


class ChunkTranscriptionSink:
    """Turns ``chunk_uploaded`` and ``session.completed`` events into transcription jobs (no core change needed:
    the outbox already delivers every event to every sink that accepts it)."""

    name = "transcription"
    accepts_types = ("chunk_uploaded", "session.completed")

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def accepts(self, event_type: str) -> bool:
        return event_type in self.accepts_types

    async def deliver(self, event: Any) -> int | None:
        options = transcription_settings(self.settings)
        queue = create_queue(self.settings)
        await queue.connect()
        try:
            if event.type == "chunk_uploaded":
                chunk_id = event.data["chunk_id"]
                await enqueue(queue, self.settings, CHUNK_JOB, chunk_id=chunk_id,
                                  key=f"{CHUNK_JOB}:{chunk_id}:{event.data.get('sha256', '')}",
                                  timeout=options.timeout_seconds, retries=2)
            else:
                session_id = event.data["session_id"]
                await enqueue(queue, self.settings, SESSION_JOB, session_id=session_id,
                                  key=f"{SESSION_JOB}:{session_id}", timeout=600, retries=2)
        finally:
            await queue.disconnect()
        return None
