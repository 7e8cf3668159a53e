"""The ``sessions.join`` job: a completed session's chunks become one asset, overlaps trimmed.

Safe to re-run: a session that already has its asset is left alone, and an asset a previous attempt created but did
not get to link (found by ``metadata.session_id``) is linked instead of made twice. The media work is the installed
chunk joiner's (``register_chunk_joiners``: the video plugin's); a worker without one skips the job with a warning
(the session stays completed, its chunks unjoined).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import shutil
import types
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from uuid import UUID

from mediasvc import events
from mediasvc.contracts import JoinError, JoinPart
from mediasvc.errors import MediaServiceError
from mediasvc.ingest.assets import create_uploaded_asset, reserve_key
from mediasvc.ingest.sessions_gaps import effective_overlap
from mediasvc.metrics import Metrics
from mediasvc.storage_files import local_file
from mediasvc.tables import Asset, Chunk, RecordingSession

log = logging.getLogger("mediasvc.sessions")

JOIN_JOB = "sessions.join"
READ_CHUNK = 1024 * 1024

CONTENT_TYPES = {
    ("video", "mp4"): "video/mp4", ("audio", "mp4"): "audio/mp4", ("audio", "m4a"): "audio/mp4",
    ("video", "mov"): "video/quicktime", ("video", "webm"): "video/webm", ("audio", "webm"): "audio/webm",
    ("video", "mkv"): "video/x-matroska", ("audio", "ogg"): "audio/ogg", ("audio", "mp3"): "audio/mpeg",
    ("audio", "wav"): "audio/wav",
}


def wants_join(metadata: dict[str, Any] | None, join: bool | None) -> bool:
    """``?join=`` on complete wins; otherwise the session's ``metadata.join`` (true only when literally true)."""
    if join is not None:
        return join
    return bool(metadata) and metadata.get("join") is True  # type: ignore[union-attr]


def _now() -> datetime:
    return datetime.now(UTC)


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A local file as an async iterable of 1 MiB pieces, read off the event loop (for ``storage.put``)."""
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        while data := await asyncio.to_thread(handle.read, READ_CHUNK):
            yield data
    finally:
        handle.close()


def _move_into_place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    source.chmod(0o644)  # temp files are private (0600); stored files are as the local store writes them
    os.replace(source, target)  # atomic; EXDEV (another filesystem) falls back to copying


async def store_file(storage: Any, key: str, path: Path, content_type: str) -> None:
    """Store a finished local file under ``key``. On the local backend, when the file is on the same filesystem,
    it is moved into place (no second copy of the bytes); otherwise it is streamed through ``storage.put``.
    ``path`` may be gone afterwards."""
    try:
        target = storage.local_path(key)
    except MediaServiceError:  # a key the local backend refuses: let put() raise its own error
        target = None
    if target is not None:
        try:
            await asyncio.to_thread(_move_into_place, path, Path(target))
            return
        except OSError as exc:
            log.debug("moving %s into place failed (%s): copying instead", path.name, exc)
    await storage.put(key, file_chunks(path), content_type=content_type)


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while data := handle.read(READ_CHUNK):
            digest.update(data)
            size += len(data)
    return digest.hexdigest(), size


async def _link(session_id: UUID, asset_id: UUID) -> None:
    await RecordingSession.update({RecordingSession.asset: asset_id, RecordingSession.join_state: "done",
                                   RecordingSession.updated_at: _now()}).where(RecordingSession.id == session_id)


def _gaps(chunks: list[dict[str, Any]], result: Any) -> dict[str, Any]:
    """The missing chunk ranges a join went around, with the time range each left out (stream joins)."""
    indexes = [c["sequence_index"] for c in chunks]
    missing = [(a + 1, b - 1) for a, b in zip(indexes, indexes[1:]) if b != a + 1]
    if not missing:
        return {}
    times = list(result.gaps) + [None] * len(missing)
    return {"gaps": [{"chunks": {"start": start, "end": end},
                      "seconds": {"start": round(t[0], 3), "end": round(t[1], 3)} if t else None}
                     for (start, end), t in zip(missing, times)]}


_PATHS = re.compile(r"(?:[A-Za-z]:)?(?:/[^\s/'\":]+)+/?")
_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")


def readable_reason(message: str) -> str:
    """A failure reason fit for a client and the dashboard: no file paths, no errno numbers, not too long."""
    text = _ERRNO.sub("", _PATHS.sub("(file)", message)).strip() or "the recording could not be joined"
    return text[:300]


async def fail_session(session: dict[str, Any], reason: str, *, queue: Any = None) -> None:
    """Mark a completed session ``failed`` with ``reason`` and emit ``session.failed``, in one transaction."""
    async with RecordingSession._meta.db.transaction():
        await RecordingSession.update({RecordingSession.status: "failed", RecordingSession.error: reason,
                                       RecordingSession.join_state: "failed", RecordingSession.updated_at: _now()}
                                      ).where(RecordingSession.id == session["id"])
        await events.emit(events.SESSION_FAILED, {
            "session_id": str(session["id"]), "client_id": session["client_id"],
            "interview_id": session["interview_id"], "user_id": session["user_id"], "profile": session["profile"],
            "mode": session["mode"], "stage": "join", "reason": reason,
        }, tenant_id=session["tenant"])
    if queue is not None:
        await events.kick(queue)


async def join_session(ctx: dict[str, Any], *, session_id: str) -> dict[str, Any]:
    """Join the chunks of a completed session into one asset (``create_uploaded_asset(method="session")``). A join
    that cannot succeed (``JoinError``, or any error on the last attempt) leaves the session ``failed`` with a
    readable reason and a ``session.failed`` event — never ``completed`` without an asset."""
    joiner = ctx["host"].chunk_joiner
    sid = UUID(session_id)
    session = await RecordingSession.select(
        RecordingSession.all_columns(), RecordingSession.tenant.slug.as_alias("tenant_slug")
    ).where(RecordingSession.id == sid).output(load_json=True).first()
    if session is None:
        return {"status": "gone"}
    if session["status"] != "completed":
        return {"status": "skipped", "reason": f"session is {session['status']}"}
    if session["asset"] is not None:
        return {"status": "done", "asset_id": str(session["asset"])}
    earlier = await Asset.raw(
        "SELECT id FROM assets WHERE tenant = {} AND metadata->>'session_id' = {} AND status != 'deleted' "
        "ORDER BY created_at LIMIT 1", session["tenant"], session_id,
    )
    if earlier:
        await _link(sid, earlier[0]["id"])
        return {"status": "done", "asset_id": str(earlier[0]["id"]), "linked": True}
    if joiner is None:
        log.warning("session %s not joined: no chunk joiner plugin is installed (mediasvc-video)", session_id)
        return {"status": "skipped", "reason": "no chunk joiner installed"}
    chunks = await Chunk.select().where(Chunk.session == sid).order_by(Chunk.sequence_index)
    if not chunks:
        return {"status": "skipped", "reason": "no chunks"}
    try:
        return await _join(ctx, session, chunks)
    except JoinError as exc:
        reason = readable_reason(str(exc))
        log.warning("session %s cannot be joined: %s", session_id, reason)
    except Exception:
        job = ctx.get("job")
        if job is not None and job.retryable:
            raise  # the next attempt may get through (storage or database hiccup)
        log.exception("session %s: joining failed on its last attempt", session_id)
        reason = "the recording could not be joined (internal error; see the worker log)"
    await fail_session(session, reason, queue=ctx.get("queue"))
    return {"status": "failed", "reason": reason}


async def _join(ctx: dict[str, Any], session: dict[str, Any], chunks: list[dict[str, Any]]) -> dict[str, Any]:
    settings, storage, joiner = ctx["settings"], ctx["storage"], ctx["host"].chunk_joiner
    session_id = str(session["id"])
    sid = session["id"]
    stream = session["mode"] == "stream"
    if stream and not callable(getattr(joiner, "join_stream", None)):
        raise JoinError(f"the installed chunk joiner ({joiner.name}) cannot join stream sessions")
    profile_name = session["profile"]
    profile = settings.profiles[profile_name]

    work = Path(settings.data_dir) / "tmp" / f"join-{session_id}-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        indexes = {c["sequence_index"] for c in chunks}
        parts = []
        for position, chunk in enumerate(chunks):
            name = PurePosixPath(chunk["storage_key"]).name
            path = await local_file(storage, chunk["storage_key"], work, name)
            previous = chunks[position - 1]["sequence_index"] if position else -1
            parts.append(JoinPart(path=path, trim=0.0 if stream else effective_overlap(chunk, indexes),
                                  after_gap=chunk["sequence_index"] != previous + 1))
        extension = PurePosixPath(chunks[0]["storage_key"]).suffix.lstrip(".")
        out_path = work / f"joined.{extension}"
        join = joiner.join_stream if stream else joiner.join
        result = await asyncio.to_thread(join, parts, out_path, extension, kind=profile.kind)
        if result.extension != extension:
            out_path = out_path.rename(work / f"joined-final.{result.extension}")
        sha256, size = await asyncio.to_thread(_hash_file, out_path)
        asset_id, key = reserve_key(session["tenant_slug"], profile, result.extension)
        content_type = CONTENT_TYPES.get((profile.kind, result.extension), "application/octet-stream")
        await store_file(storage, key, out_path, content_type)
        services = types.SimpleNamespace(settings=settings, queue=ctx["queue"], host=ctx["host"],
                                         metrics=ctx.get("metrics") or Metrics())
        label = session["client_id"] or session_id
        await create_uploaded_asset(
            services,  # type: ignore[arg-type]  # what create_uploaded_asset uses of Services
            asset_id=asset_id, tenant_id=session["tenant"], profile_name=profile_name,
            original_name=f"session-{label}.{result.extension}"[:255], storage_key=key, size_bytes=size,
            sha256=sha256, content_type=content_type, method="session", owner=session["user_id"],
            metadata={"session_id": session_id, "interview_id": session["interview_id"],
                      "chunks": len(chunks), "join_mode": result.mode, "session_mode": session["mode"],
                      "duration_seconds": round(result.duration, 3), **_gaps(chunks, result)},
        )
        await _link(sid, asset_id)
        log.info("session %s joined (%s, %d chunks, %.2fs) into asset %s", session_id, result.mode, len(chunks),
                 result.duration, asset_id)
        return {"status": "done", "asset_id": str(asset_id), "mode": result.mode, "duration": result.duration}
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
