"""Recording sessions: a recorder uploads its recording as numbered chunks (complete files that overlap by
``overlap_seconds``); the session reports what it has, what is missing, and joins the chunks when complete.

A session is addressed by its id or by the client's own id (``client_id``, unique per tenant). Chunk files are
streamed to a temp file (hashed, counted, sniffed) and stored at ``chunk_key(...)``; the chunk row and its
``chunk_uploaded`` event are written only once the bytes are stored.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import asyncpg
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from msgspec import Meta

from mediasvc import events
from mediasvc.auth import Principal, PrincipalDep
from mediasvc.errors import Conflict, NotFound, ValidationFailed
from mediasvc.ingest.sessions_gaps import (
    expected_count,
    inconsistent_chunks,
    missing_ranges,
    total_duration,
)
from mediasvc.ingest.sessions_join import JOIN_JOB, store_file, wants_join
from mediasvc.ingest.sessions_multipart import ReceivedFile, check_content_length, receive_form
from mediasvc.ingest.validation import Sniffed, check_content, check_declared, sanitize_filename
from mediasvc.media_probe import probe_duration
from mediasvc.pagination import decode_cursor, encode_cursor
from mediasvc.profiles import Profile
from mediasvc.queue import enqueue_job
from mediasvc.services import Services, ServicesDep
from mediasvc.storage_keys import chunk_key
from mediasvc.tables import Chunk, RecordingSession

log = logging.getLogger("mediasvc.sessions")

MAX_CHUNKS = 100_000
JOIN_TIMEOUT_SECONDS = 3600  # a long recording may need re-encoding
SessionStatus = Literal["active", "completed", "failed"]
ClientId = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]
ShortText = Annotated[str, Meta(max_length=200)]
DeviceText = Annotated[str, Meta(max_length=512)]


# --- payloads ------------------------------------------------------------------------------------------------


class ClientDevice(msgspec.Struct, kw_only=True):
    """A device as the browser's ``navigator.mediaDevices.enumerateDevices()`` reports it."""

    deviceId: DeviceText = ""  # the browser's field names
    kind: Literal["videoinput", "audioinput", "audiooutput"]
    label: DeviceText = ""
    groupId: DeviceText = ""


class SessionCreate(msgspec.Struct, forbid_unknown_fields=True):
    id: ClientId | None = None  # the client's own id for the session (same as client_id)
    client_id: ClientId | None = None
    interview_id: ShortText = ""
    user_id: ShortText = ""
    profile: str = "video_response"
    expected_chunks: Annotated[int, Meta(ge=1, le=MAX_CHUNKS)] | None = None
    metadata: dict[str, Any] = {}
    devices: Annotated[list[ClientDevice], Meta(max_length=64)] = []


class ChunkFields(msgspec.Struct):
    """The text fields of a chunk upload (multipart); unknown fields are ignored."""

    sequence_index: Annotated[int, Meta(ge=0, lt=MAX_CHUNKS)]
    total_chunks: Annotated[int, Meta(ge=1, le=MAX_CHUNKS)] | None = None
    overlap_seconds: Annotated[float, Meta(ge=0, le=3600)] = 0.0
    question_id: ShortText | None = None
    session_id: str | None = None
    replace: bool = False


class ChunkOut(msgspec.Struct):
    id: UUID
    session_id: UUID
    sequence_index: int
    size_bytes: int
    sha256: str
    content_type: str
    duration_seconds: float | None
    overlap_seconds: float
    question_id: str | None
    created_at: datetime


class SessionOut(msgspec.Struct):
    id: UUID
    client_id: str | None
    interview_id: str
    user_id: str
    profile: str
    status: str
    expected_chunks: int | None
    chunks_received: int
    bytes_received: int
    duration_seconds: float  # probed durations minus the overlaps
    missing_chunks: int
    devices: list[ClientDevice]
    metadata: dict[str, Any]
    asset_id: UUID | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class SessionDetail(SessionOut):
    chunks: list[ChunkOut] = []


class Range(msgspec.Struct):
    start: int
    end: int


class InconsistentChunk(msgspec.Struct):
    sequence_index: int
    duration_seconds: float | None
    reason: str  # no_duration, overlap_exceeds_duration, duration_differs_from_median
    message: str
    median_seconds: float | None


class Gaps(msgspec.Struct):
    session_id: UUID
    expected_chunks: int
    chunks_received: int
    missing: list[Range]
    missing_count: int
    inconsistent: list[InconsistentChunk]
    complete: bool  # nothing missing and nothing inconsistent


class SessionPage(msgspec.Struct):
    items: list[SessionOut]
    next_cursor: str | None = None


# --- helpers -------------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


async def get_session_row(session_ref: str, principal: Principal, *, include_deleted: bool = False) -> dict[str, Any]:
    """The caller's session by id or client id; another tenant's (or a deleted) session is a 404."""
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


async def _chunk_rows(session_ids: list[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    by_session: dict[UUID, list[dict[str, Any]]] = {sid: [] for sid in session_ids}
    if not session_ids:
        return by_session
    rows = await Chunk.select().where(Chunk.session.is_in(session_ids)).order_by(Chunk.sequence_index)
    for row in rows:
        by_session[row["session"]].append(row)
    return by_session


def _chunk_out(row: dict[str, Any]) -> ChunkOut:
    return ChunkOut(id=row["id"], session_id=row["session"], sequence_index=row["sequence_index"],
                    size_bytes=row["size_bytes"], sha256=row["sha256"], content_type=row["content_type"],
                    duration_seconds=row["duration_seconds"], overlap_seconds=row["overlap_seconds"],
                    question_id=row["question_id"], created_at=row["created_at"])


def _devices(raw: Any) -> list[ClientDevice]:
    try:
        return msgspec.convert(raw or [], list[ClientDevice])
    except msgspec.ValidationError:
        return []


def _summary(row: dict[str, Any], chunks: list[dict[str, Any]], *, detail: bool = False) -> SessionOut:
    indexes = [c["sequence_index"] for c in chunks]
    expected = expected_count(row["expected_chunks"], indexes)
    missing = sum(end - start + 1 for start, end in missing_ranges(expected, indexes))
    fields: dict[str, Any] = {
        "id": row["id"], "client_id": row["client_id"], "interview_id": row["interview_id"],
        "user_id": row["user_id"], "profile": row["profile"], "status": row["status"],
        "expected_chunks": row["expected_chunks"], "chunks_received": len(chunks),
        "bytes_received": sum(c["size_bytes"] for c in chunks), "duration_seconds": total_duration(chunks),
        "missing_chunks": missing, "devices": _devices(row["devices"]), "metadata": row["metadata"] or {},
        "asset_id": row["asset"], "created_at": row["created_at"], "updated_at": row["updated_at"],
        "completed_at": row["completed_at"],
    }
    if detail:
        return SessionDetail(**fields, chunks=[_chunk_out(c) for c in chunks])
    return SessionOut(**fields)


async def _detail(session_id: UUID, principal: Principal) -> SessionDetail:
    row = await get_session_row(str(session_id), principal)
    chunks = (await _chunk_rows([row["id"]]))[row["id"]]
    return _summary(row, chunks, detail=True)  # type: ignore[return-value]


def _session_profile(services: Services, row: dict[str, Any]) -> Profile:
    profile = services.settings.profiles.get(row["profile"])
    if profile is None:
        raise ValidationFailed(f"The session's profile {row['profile']!r} is no longer configured",
                               details={"profile": row["profile"]})
    return profile


def _chunk_fields(raw: dict[str, str]) -> ChunkFields:
    values = {k: v for k, v in raw.items() if v != "" and k in ChunkFields.__struct_fields__}
    try:
        fields = msgspec.convert(values, ChunkFields, strict=False)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(f"Invalid chunk fields: {exc}", details={"fields": sorted(raw)}) from exc
    if not math.isfinite(fields.overlap_seconds):
        raise ValidationFailed("overlap_seconds must be a finite number of seconds")
    if fields.total_chunks is not None and fields.sequence_index >= fields.total_chunks:
        raise ValidationFailed("sequence_index must be less than total_chunks (indexes start at 0)",
                               details={"sequence_index": fields.sequence_index, "total_chunks": fields.total_chunks})
    return fields


# --- the controller ------------------------------------------------------------------------------------------


class SessionController(Controller):
    path = "/sessions"
    tags = ["sessions"]

    @post("/", status_code=HTTP_201_CREATED,
          summary="Create a recording session (idempotent with a client id: 200 with the existing one)")
    async def create_session(self, data: JSONBody[SessionCreate], principal: PrincipalDep,
                             services: ServicesDep) -> Response[SessionDetail]:
        if data.id and data.client_id and data.id != data.client_id:
            raise ValidationFailed("id and client_id name the same thing: send one, or the same value",
                                   details={"id": data.id, "client_id": data.client_id})
        client_id = data.client_id or data.id
        profile = services.settings.profiles.get(data.profile)
        if profile is None:
            raise ValidationFailed(f"Unknown profile {data.profile!r}",
                                   details={"profile": data.profile, "available": sorted(services.settings.profiles)})
        if profile.kind not in ("video", "audio"):
            raise ValidationFailed(f"Profile {data.profile!r} is for {profile.kind}, not a recording",
                                   details={"profile": data.profile, "kind": profile.kind})
        if client_id:
            existing = await self._by_client_id(client_id, principal)
            if existing is not None:
                return Response(await _detail(existing, principal), status_code=HTTP_200_OK)
        session_id = uuid4()
        now = _now()
        try:
            await RecordingSession.insert(RecordingSession(
                id=session_id, tenant=principal.tenant_id, client_id=client_id, interview_id=data.interview_id,
                user_id=data.user_id, profile=data.profile, expected_chunks=data.expected_chunks, status="active",
                devices=msgspec.to_builtins(data.devices), metadata=data.metadata, created_at=now, updated_at=now,
            ))
        except asyncpg.UniqueViolationError:  # the same client id created concurrently: that one wins
            existing = await self._by_client_id(client_id or "", principal)
            if existing is None:
                raise
            return Response(await _detail(existing, principal), status_code=HTTP_200_OK)
        return Response(await _detail(session_id, principal), status_code=HTTP_201_CREATED)

    async def _by_client_id(self, client_id: str, principal: Principal) -> UUID | None:
        row = await RecordingSession.select(RecordingSession.id, RecordingSession.status).where(
            RecordingSession.client_id == client_id, RecordingSession.tenant == principal.tenant_id
        ).first()
        if row is None:
            return None
        if row["status"] == "deleted":
            raise Conflict(f"Session {client_id} is being deleted", details={"client_id": client_id})
        return row["id"]

    @get("/", summary="List recording sessions, newest first")
    async def list_sessions(
        self,
        principal: PrincipalDep,
        interview_id: FromQuery[str | None] = None,
        user_id: FromQuery[str | None] = None,
        status: FromQuery[SessionStatus | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> SessionPage:
        where = [RecordingSession.tenant == principal.tenant_id]
        where.append(RecordingSession.status == status if status else RecordingSession.status != "deleted")
        if interview_id:
            where.append(RecordingSession.interview_id == interview_id)
        if user_id:
            where.append(RecordingSession.user_id == user_id)
        query = RecordingSession.select().where(*where)
        if cursor:
            created, last_id = decode_cursor(cursor)
            query = query.where((RecordingSession.created_at < created)
                                | ((RecordingSession.created_at == created) & (RecordingSession.id < last_id)))
        rows = await query.order_by(RecordingSession.created_at, RecordingSession.id, ascending=False).limit(
            limit + 1).output(load_json=True)
        page = rows[:limit]
        chunks = await _chunk_rows([r["id"] for r in page])
        next_cursor = encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit \
            else None
        return SessionPage(items=[_summary(r, chunks[r["id"]]) for r in page], next_cursor=next_cursor)

    @get("/{session_ref:str}", summary="A session's summary: chunks, bytes, duration, devices, status")
    async def get_session(self, session_ref: FromPath[str], principal: PrincipalDep) -> SessionDetail:
        row = await get_session_row(session_ref, principal)
        chunks = (await _chunk_rows([row["id"]]))[row["id"]]
        return _summary(row, chunks, detail=True)  # type: ignore[return-value]

    @get("/{session_ref:str}/gaps", summary="Missing chunk ranges and chunks whose duration looks wrong")
    async def get_gaps(self, session_ref: FromPath[str], principal: PrincipalDep) -> Gaps:
        row = await get_session_row(session_ref, principal)
        chunks = (await _chunk_rows([row["id"]]))[row["id"]]
        indexes = [c["sequence_index"] for c in chunks]
        expected = expected_count(row["expected_chunks"], indexes)
        missing = missing_ranges(expected, indexes)
        inconsistent = inconsistent_chunks(chunks, expected)
        return Gaps(
            session_id=row["id"], expected_chunks=expected, chunks_received=len(chunks),
            missing=[Range(start=s, end=e) for s, e in missing],
            missing_count=sum(e - s + 1 for s, e in missing),
            inconsistent=[msgspec.convert(item, InconsistentChunk) for item in inconsistent],
            complete=bool(chunks) and not missing and not inconsistent,
        )

    @post("/{session_ref:str}/chunks", status_code=HTTP_201_CREATED, request_max_body_size=None,
          summary="Upload one chunk (multipart: file, sequence_index, total_chunks, overlap_seconds, question_id)")
    async def upload_chunk(self, session_ref: FromPath[str], request: Request[Any, Any, Any],
                           principal: PrincipalDep, services: ServicesDep) -> Response[ChunkOut]:
        session = await get_session_row(session_ref, principal)
        if session["status"] != "active":
            raise Conflict(f"Session {session_ref} is {session['status']}: it takes no more chunks",
                           details={"status": session["status"]})
        profile_name = session["profile"]
        profile = _session_profile(services, session)
        check_content_length(request.headers.get("content-length"), profile.max_bytes)
        state: dict[str, Any] = {}

        def check_name(filename: str) -> None:
            state["extension"] = check_declared(profile_name, profile, sanitize_filename(filename), None)

        def check_head(head: bytes) -> None:
            state["sniffed"] = check_content(profile_name, profile, state["extension"], head)

        temp_dir = Path(services.settings.data_dir) / "tmp" / "chunks"
        async with receive_form(request.stream(), content_type=request.headers.get("content-type"),
                                temp_dir=temp_dir, max_bytes=profile.max_bytes, check_name=check_name,
                                check_head=check_head) as form:
            fields = _chunk_fields(form.fields)
            if form.file is None:
                raise ValidationFailed("The upload has no file part (a part named 'file' with a filename)")
            if fields.session_id and fields.session_id not in (str(session["id"]), session["client_id"]):
                raise ValidationFailed("session_id does not match the session in the path",
                                       details={"session_id": fields.session_id})
            return await self._store_chunk(session, fields, form.file, state["extension"], state["sniffed"],
                                           principal, services)

    async def _store_chunk(self, session: dict[str, Any], fields: ChunkFields, file: ReceivedFile, extension: str,
                           sniffed: Sniffed, principal: Principal, services: Services) -> Response[ChunkOut]:
        session_id, seq = session["id"], fields.sequence_index
        existing = await Chunk.select().where(Chunk.session == session_id, Chunk.sequence_index == seq).first()
        self._check_existing(existing, fields, file)
        if existing is not None and existing["sha256"] == file.sha256:
            return Response(_chunk_out(existing), status_code=HTTP_200_OK)  # the same bytes again
        duration = await asyncio.to_thread(probe_duration, file.path)
        key = chunk_key(principal.tenant_slug, session_id, seq, extension)
        storage = services.storage
        stored_new_key = False
        now = _now()
        try:
            async with Chunk._meta.db.transaction():
                # one writer per (session, index) at a time: the stored bytes and the row always agree
                await Chunk.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", f"chunk:{session_id}:{seq}")
                current = await Chunk.select().where(Chunk.session == session_id,
                                                     Chunk.sequence_index == seq).first()
                self._check_existing(current, fields, file)
                if current is not None and current["sha256"] == file.sha256:
                    return Response(_chunk_out(current), status_code=HTTP_200_OK)
                stored_new_key = current is None or current["storage_key"] != key
                await store_file(storage, key, file.path, sniffed.mime)
                values = {"storage_key": key, "content_type": sniffed.mime, "size_bytes": file.size,
                          "sha256": file.sha256, "duration_seconds": duration,
                          "overlap_seconds": fields.overlap_seconds, "question_id": fields.question_id}
                # the session row stays locked until commit: completing or deleting waits for this chunk,
                # and a session completed or deleted meanwhile refuses it
                still_active = await RecordingSession.raw(
                    "UPDATE recording_sessions SET updated_at = now(), expected_chunks = CASE WHEN {}::int IS NULL "
                    "THEN expected_chunks ELSE GREATEST(COALESCE(expected_chunks, 0), {}::int) END "
                    "WHERE id = {} AND status = 'active' RETURNING id",
                    fields.total_chunks, fields.total_chunks, session_id,
                )
                if not still_active:
                    raise Conflict("The session was completed or deleted while the chunk was uploading",
                                   details={"session_id": str(session_id)})
                if current is None:
                    chunk_id = uuid4()
                    await Chunk.insert(Chunk(id=chunk_id, session=session_id, sequence_index=seq, created_at=now,
                                             **values))
                else:
                    chunk_id = current["id"]
                    await Chunk.update({getattr(Chunk, k): v for k, v in values.items()} | {Chunk.created_at: now}
                                       ).where(Chunk.id == chunk_id)
                await events.emit(events.CHUNK_UPLOADED, {
                    "session_id": str(session_id), "client_id": session["client_id"],
                    "interview_id": session["interview_id"], "user_id": session["user_id"],
                    "chunk_id": str(chunk_id), "sequence_index": seq, "total_chunks": fields.total_chunks,
                    "size_bytes": file.size, "sha256": file.sha256, "duration_seconds": duration,
                    "overlap_seconds": fields.overlap_seconds, "question_id": fields.question_id,
                    "replaced": current is not None,
                }, tenant_id=principal.tenant_id)
        except BaseException:
            if stored_new_key:  # nothing refers to what was just written
                try:
                    await storage.delete(key)
                except Exception:  # best effort: the session's prefix is removed with the session anyway
                    log.warning("could not remove %s after a failed chunk upload", key, exc_info=True)
            raise
        if current is not None and current["storage_key"] != key:  # replaced with another extension
            try:
                await storage.delete(current["storage_key"])
            except Exception:
                log.warning("could not remove replaced chunk %s", current["storage_key"], exc_info=True)
        await events.kick(services.queue)
        row = await Chunk.select().where(Chunk.id == chunk_id).first()
        return Response(_chunk_out(row), status_code=HTTP_200_OK if current is not None else HTTP_201_CREATED)

    @staticmethod
    def _check_existing(existing: dict[str, Any] | None, fields: ChunkFields, file: ReceivedFile) -> None:
        if existing is not None and existing["sha256"] != file.sha256 and not fields.replace:
            raise Conflict(
                f"Chunk {fields.sequence_index} was already uploaded with different content; send replace=true "
                "to replace it",
                details={"sequence_index": fields.sequence_index, "existing_sha256": existing["sha256"],
                         "sha256": file.sha256},
            )

    @post("/{session_ref:str}/complete", status_code=HTTP_200_OK,
          summary="Complete the session; `join=true` (or metadata.join) joins the chunks into one asset")
    async def complete_session(
        self,
        session_ref: FromPath[str],
        principal: PrincipalDep,
        services: ServicesDep,
        join: FromQuery[bool | None] = None,
        force: FromQuery[bool] = False,
    ) -> SessionDetail:
        session = await get_session_row(session_ref, principal)
        session_id = session["id"]
        if session["status"] == "completed":
            return await _detail(session_id, principal)  # completing twice changes nothing
        if session["status"] != "active":
            raise Conflict(f"Session {session_ref} is {session['status']}", details={"status": session["status"]})
        chunks = (await _chunk_rows([session_id]))[session_id]
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
        now = _now()
        async with RecordingSession._meta.db.transaction():
            done = await RecordingSession.update({
                RecordingSession.status: "completed", RecordingSession.completed_at: now,
                RecordingSession.updated_at: now,
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
        return await _detail(session_id, principal)

    @delete("/{session_ref:str}", status_code=HTTP_204_NO_CONTENT,
            summary="Delete the session, its chunk records and its stored chunk files")
    async def delete_session(self, session_ref: FromPath[str], principal: PrincipalDep,
                             services: ServicesDep) -> None:
        session = await get_session_row(session_ref, principal, include_deleted=True)
        session_id = session["id"]
        # marked first: no chunk can be added from here on (uploads check the status in their transaction)
        await RecordingSession.update({RecordingSession.status: "deleted", RecordingSession.updated_at: _now()}).where(
            RecordingSession.id == session_id)
        storage = services.storage
        keys = {row["storage_key"] for row in await Chunk.select(Chunk.storage_key).where(
            Chunk.session == session_id)}
        prefix = chunk_key(principal.tenant_slug, session_id, 0, "bin").rsplit("/", 1)[0] + "/"
        keys.update([info.key async for info in storage.list(prefix)])
        for key in sorted(keys):
            await storage.delete(key)
        await RecordingSession.delete().where(RecordingSession.id == session_id)
