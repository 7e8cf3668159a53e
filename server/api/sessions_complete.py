"""Completing a recording session: refuse while chunks are missing (unless forced), mark it completed and emit
``session.completed`` in one transaction, then queue the ``sessions.join`` job when a join is wanted.

Joining needs a chunk joiner plugin (``register_chunk_joiners``; the video plugin's). Without one, completing with a
join wanted (``?join=true`` or ``metadata.join``) is a 503 ``service_unavailable`` and the session stays active:
complete it with ``join=false`` to keep the chunks as they are.
"""

from __future__ import annotations

from typing import Any

from mediasvc import events
from mediasvc.api.sessions_rows import chunk_rows, detail, now
from mediasvc.api.sessions_schemas import SessionDetail
from mediasvc.auth import Principal
from mediasvc.errors import Conflict, ServiceUnavailable
from mediasvc.ingest.sessions_gaps import expected_count, missing_ranges, total_duration
from mediasvc.ingest.sessions_join import JOIN_JOB, wants_join
from mediasvc.queue import enqueue_job
from mediasvc.services import Services
from mediasvc.tables import Chunk, RecordingSession

JOIN_TIMEOUT_SECONDS = 3600  # a long recording may need re-encoding


async def complete(session: dict[str, Any], session_ref: str, principal: Principal, services: Services, *,
                   join: bool | None, force: bool) -> SessionDetail:
    session_id = session["id"]
    if session["status"] == "completed":
        return await detail(session_id, principal)  # completing twice changes nothing
    if session["status"] != "active":
        raise Conflict(f"Session {session_ref} is {session['status']}", details={"status": session["status"]})
    chunks = (await chunk_rows([session_id]))[session_id]
    indexes = [c["sequence_index"] for c in chunks]
    expected = expected_count(session["expected_chunks"], indexes)
    missing = missing_ranges(expected, indexes)
    if (missing or not chunks) and not force:
        raise Conflict(
            "The session is missing chunks; upload them, or complete with force=true" if chunks
            else "The session has no chunks; upload some, or complete with force=true",
            details={"missing": [{"start": s, "end": e} for s, e in missing], "expected_chunks": expected},
        )
    join_now = wants_join(session["metadata"], join) and bool(chunks)
    if join_now and services.host.chunk_joiner is None:
        raise ServiceUnavailable(
            "Joining chunks needs a chunk joiner plugin (install mediasvc-video); complete with join=false to "
            "keep the chunks unjoined", details={"missing": "register_chunk_joiners"})
    completed_at = now()
    async with RecordingSession._meta.db.transaction():
        done = await RecordingSession.update({
            RecordingSession.status: "completed", RecordingSession.completed_at: completed_at,
            RecordingSession.updated_at: completed_at,
        }).where(RecordingSession.id == session_id, RecordingSession.status == "active").returning(
            RecordingSession.id)
        if done:
            # chunks are re-read in the transaction: an upload that committed meanwhile is counted
            final = await Chunk.select(Chunk.sequence_index, Chunk.size_bytes, Chunk.duration_seconds,
                                       Chunk.overlap_seconds).where(Chunk.session == session_id)
            final_indexes = [c["sequence_index"] for c in final]
            await events.emit(events.SESSION_COMPLETED, {
                "session_id": str(session_id), "client_id": session["client_id"],
                "interview_id": session["interview_id"], "user_id": session["user_id"],
                "profile": session["profile"], "chunks": len(final),
                "bytes": sum(c["size_bytes"] for c in final), "duration_seconds": total_duration(final),
                "missing": [{"start": s, "end": e} for s, e in missing_ranges(
                    expected_count(session["expected_chunks"], final_indexes), final_indexes)],
                "join": join_now,
            }, tenant_id=principal.tenant_id)
    if done:
        await events.kick(services.queue)
        if join_now:
            await enqueue_job(services.queue, services.settings, JOIN_JOB, session_id=str(session_id),
                              key=f"{JOIN_JOB}:{session_id}",
                              timeout=max(services.settings.queue.default_timeout_seconds, JOIN_TIMEOUT_SECONDS))
    return await detail(session_id, principal)
