"""Completing a recording session: refuse while chunks are missing (unless forced), mark it completed and emit
``session.completed`` in one transaction, then queue the ``sessions.join`` job when a join is wanted.

Joining needs a chunk joiner plugin (``register_chunk_joiners``; the video plugin's). Without one, completing with a
join wanted (``?join=true`` or ``metadata.join``) is a 503 ``service_unavailable`` and the session stays active:
complete it with ``join=false`` to keep the chunks as they are.
"""

from __future__ import annotations

from typing import Any

from litestar import Response
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from mediasvc import events
from mediasvc.api.sessions_rows import chunk_rows, detail, now
from mediasvc.api.sessions_schemas import SessionDetail
from mediasvc.auth import Principal
from mediasvc.errors import Conflict, ServiceUnavailable
from mediasvc.ingest.sessions_gaps import expected_count, missing_ranges, total_duration
from mediasvc.ingest.sessions_join import JOIN_JOB, wants_join
from mediasvc.ingest.sessions_stream import is_stream
from mediasvc.queue import enqueue_job
from mediasvc.services import Services
from mediasvc.tables import Chunk, RecordingSession

JOIN_TIMEOUT_SECONDS = 3600  # a long recording may need re-encoding


async def complete(session: dict[str, Any], session_ref: str, principal: Principal, services: Services, *,
                   join: bool | None, force: bool, allow_gaps: bool = False) -> Response[SessionDetail]:
    """200 with the session when nothing is joined (or on a repeat); 202 with ``Location`` (the session, to poll)
    and ``join: "queued"`` when the join job was queued: the asset id appears there once it is done."""
    session_id = session["id"]
    if session["status"] == "completed":
        return _answer(await detail(session_id, principal))  # completing twice changes nothing
    if session["status"] != "active":
        raise Conflict(f"Session {session_ref} is {session['status']}", details={"status": session["status"]})
    chunks = (await chunk_rows([session_id]))[session_id]
    indexes = [c["sequence_index"] for c in chunks]
    expected = expected_count(session["expected_chunks"], indexes)
    missing = missing_ranges(expected, indexes)
    join_now = wants_join(session["metadata"], join) and bool(chunks)
    if is_stream(session) and join_now and 0 not in indexes:
        raise Conflict("The stream's first chunk (index 0, with its header) is missing: upload it before joining",
                       details={"missing": [{"start": s, "end": e} for s, e in missing], "expected_chunks": expected})
    if missing and chunks and is_stream(session) and not (force or allow_gaps):
        raise Conflict(
            "The stream is missing chunks " + ", ".join(f"{s}-{e}" if s != e else str(s) for s, e in missing)
            + "; upload them, or complete with allow_gaps=true to join around the gaps",
            details={"missing": [{"start": s, "end": e} for s, e in missing], "expected_chunks": expected})
    if (missing or not chunks) and not (force or allow_gaps):
        raise Conflict(
            "The session is missing chunks; upload them, or complete with force=true" if chunks
            else "The session has no chunks; upload some, or complete with force=true",
            details={"missing": [{"start": s, "end": e} for s, e in missing], "expected_chunks": expected},
        )
    if join_now and services.host.chunk_joiner is None:
        raise ServiceUnavailable(
            "Joining chunks needs a chunk joiner plugin (install mediasvc-video); complete with join=false to "
            "keep the chunks unjoined", details={"missing": "register_chunk_joiners"})
    completed_at = now()
    async with RecordingSession._meta.db.transaction():
        done = await RecordingSession.update({
            RecordingSession.status: "completed", RecordingSession.completed_at: completed_at,
            RecordingSession.updated_at: completed_at, RecordingSession.join_state: "queued" if join_now else None,
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
    return _answer(await detail(session_id, principal))


def _answer(body: SessionDetail) -> Response[SessionDetail]:
    if body.join == "queued":
        return Response(body, status_code=HTTP_202_ACCEPTED, headers={"Location": f"/api/v1/sessions/{body.id}"})
    return Response(body, status_code=HTTP_200_OK)
