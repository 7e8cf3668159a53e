"""Reading recording sessions and their chunks, and turning the rows into the API's payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from mediasvc.api.sessions_schemas import ChunkOut, ClientDevice, SessionDetail, SessionOut
from mediasvc.auth import Principal
from mediasvc.errors import NotFound, ValidationFailed
from mediasvc.ingest.sessions_gaps import expected_count, missing_ranges, total_duration
from mediasvc.profiles import Profile
from mediasvc.services import Services
from mediasvc.tables import Chunk, RecordingSession
from mediasvc.text_rules import check_text


def now() -> datetime:
    return datetime.now(UTC)


async def get_session_row(session_ref: str, principal: Principal, *, include_deleted: bool = False) -> dict[str, Any]:
    """The caller's session by id or client id; another tenant's (or a deleted) session is a 404."""
    check_text(session_ref, "session_ref")
    row = None
    try:
        session_id = UUID(session_ref)
    except ValueError:
        session_id = None
    if session_id is not None:
        row = await RecordingSession.select().where(
            RecordingSession.id == session_id, RecordingSession.tenant == principal.tenant_id
        ).output(load_json=True).first()
    if row is None:
        row = await RecordingSession.select().where(
            RecordingSession.client_id == session_ref, RecordingSession.tenant == principal.tenant_id
        ).output(load_json=True).first()
    if row is None or (row["status"] == "deleted" and not include_deleted):
        raise NotFound(f"Session {session_ref} not found", details={"session_id": session_ref})
    return row


async def chunk_rows(session_ids: list[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    by_session: dict[UUID, list[dict[str, Any]]] = {sid: [] for sid in session_ids}
    if not session_ids:
        return by_session
    rows = await Chunk.select().where(Chunk.session.is_in(session_ids)).order_by(Chunk.sequence_index)
    for row in rows:
        by_session[row["session"]].append(row)
    return by_session


def chunk_out(row: dict[str, Any]) -> ChunkOut:
    return ChunkOut(id=row["id"], session_id=row["session"], sequence_index=row["sequence_index"],
                    size_bytes=row["size_bytes"], sha256=row["sha256"], content_type=row["content_type"],
                    duration_seconds=row["duration_seconds"], overlap_seconds=row["overlap_seconds"],
                    question_id=row["question_id"], created_at=row["created_at"])


def _devices(raw: Any) -> list[ClientDevice]:
    try:
        return msgspec.convert(raw or [], list[ClientDevice])
    except msgspec.ValidationError:
        return []


def summary(row: dict[str, Any], chunks: list[dict[str, Any]], *, detail: bool = False) -> SessionOut:
    indexes = [c["sequence_index"] for c in chunks]
    expected = expected_count(row["expected_chunks"], indexes)
    missing = sum(end - start + 1 for start, end in missing_ranges(expected, indexes))
    fields: dict[str, Any] = {
        "id": row["id"], "client_id": row["client_id"], "interview_id": row["interview_id"],
        "user_id": row["user_id"], "profile": row["profile"], "mode": row["mode"], "status": row["status"],
        "error": row["error"], "join": row["join_state"],
        "expected_chunks": row["expected_chunks"], "chunks_received": len(chunks),
        "bytes_received": sum(c["size_bytes"] for c in chunks), "duration_seconds": total_duration(chunks),
        "missing_chunks": missing, "devices": _devices(row["devices"]), "metadata": row["metadata"] or {},
        "asset_id": row["asset"], "created_at": row["created_at"], "updated_at": row["updated_at"],
        "completed_at": row["completed_at"],
    }
    if detail:
        return SessionDetail(**fields, chunks=[chunk_out(c) for c in chunks])
    return SessionOut(**fields)


async def detail(session_id: UUID, principal: Principal) -> SessionDetail:
    row = await get_session_row(str(session_id), principal)
    chunks = (await chunk_rows([row["id"]]))[row["id"]]
    return summary(row, chunks, detail=True)  # type: ignore[return-value]


def session_profile(services: Services, row: dict[str, Any]) -> Profile:
    profile = services.settings.profiles.get(row["profile"])
    if profile is None:
        raise ValidationFailed(f"The session's profile {row['profile']!r} is no longer configured",
                               details={"profile": row["profile"]})
    return profile
