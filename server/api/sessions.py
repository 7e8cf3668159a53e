"""Recording sessions: a recorder uploads its recording as numbered chunks (complete files that overlap by
``overlap_seconds``); the session reports what it has, what is missing, and joins the chunks when complete.

A session is addressed by its id or by the client's own id (``client_id``, unique per tenant). The routes are here;
payloads in ``sessions_schemas``, reading rows in ``sessions_rows``, accepting a chunk in ``sessions_chunks`` and
completing (and queueing the join) in ``sessions_complete``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from mediasvc.api.sessions_chunks import receive_chunk
from mediasvc.api.sessions_complete import complete
from mediasvc.api.sessions_rows import chunk_rows, detail, get_session_row, now, summary
from mediasvc.api.sessions_schemas import (
    ChunkFields,
    ChunkOut,
    Gaps,
    InconsistentChunk,
    Range,
    SessionCreate,
    SessionDetail,
    SessionPage,
    SessionStatus,
)
from mediasvc.auth import Principal, PrincipalDep
from mediasvc.errors import Conflict, ValidationFailed
from mediasvc.ingest.sessions_gaps import expected_count, inconsistent_chunks, missing_ranges
from mediasvc.pagination import decode_cursor, encode_cursor
from mediasvc.openapi_doc import openapi_opt, struct_form
from mediasvc.services import ServicesDep
from mediasvc.storage_keys import chunk_key
from mediasvc.tables import Chunk, RecordingSession
from mediasvc.text_rules import check_text

__all__ = ["SessionController", "get_session_row"]


class SessionController(Controller):
    path = "/sessions"
    tags = ["sessions"]

    @post("/", status_code=HTTP_201_CREATED, opt=openapi_opt(responses={200: {
              "description": "A session with this client id exists already: that one",
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionDetail"}}}}}),
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
                return Response(await detail(existing, principal), status_code=HTTP_200_OK)
        session_id = uuid4()
        created = now()
        try:
            await RecordingSession.insert(RecordingSession(
                id=session_id, tenant=principal.tenant_id, client_id=client_id, interview_id=data.interview_id,
                user_id=data.user_id, profile=data.profile, mode=data.mode, expected_chunks=data.expected_chunks,
                status="active", devices=msgspec.to_builtins(data.devices), metadata=data.metadata, created_at=created,
                updated_at=created,
            ))
        except asyncpg.UniqueViolationError:  # the same client id created concurrently: that one wins
            existing = await self._by_client_id(client_id or "", principal)
            if existing is None:
                raise
            return Response(await detail(existing, principal), status_code=HTTP_200_OK)
        return Response(await detail(session_id, principal), status_code=HTTP_201_CREATED)

    async def _by_client_id(self, client_id: str, principal: Principal) -> UUID | None:
        row = await RecordingSession.select(RecordingSession.id, RecordingSession.status).where(
            RecordingSession.client_id == client_id, RecordingSession.tenant == principal.tenant_id
        ).first()
        if row is None:
            return None
        if row["status"] == "deleted":
            raise Conflict(f"Session {client_id} is being deleted", details={"client_id": client_id})
        return row["id"]

    @get("/", summary="List recording sessions, newest first",
         opt=openapi_opt(text_query=("interview_id", "user_id", "cursor")))
    async def list_sessions(
        self,
        principal: PrincipalDep,
        interview_id: FromQuery[str | None] = None,
        user_id: FromQuery[str | None] = None,
        status: FromQuery[SessionStatus | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> SessionPage:
        for field, value in (("interview_id", interview_id), ("user_id", user_id), ("cursor", cursor)):
            check_text(value, field)
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
        chunks = await chunk_rows([r["id"] for r in page])
        next_cursor = encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit \
            else None
        return SessionPage(items=[summary(r, chunks[r["id"]]) for r in page], next_cursor=next_cursor)

    @get("/{session_ref:str}", summary="A session's summary: chunks, bytes, duration, devices, status")
    async def get_session(self, session_ref: FromPath[str], principal: PrincipalDep) -> SessionDetail:
        row = await get_session_row(session_ref, principal)
        chunks = (await chunk_rows([row["id"]]))[row["id"]]
        return summary(row, chunks, detail=True)  # type: ignore[return-value]

    @get("/{session_ref:str}/gaps", summary="Missing chunk ranges and chunks whose duration looks wrong")
    async def get_gaps(self, session_ref: FromPath[str], principal: PrincipalDep) -> Gaps:
        row = await get_session_row(session_ref, principal)
        chunks = (await chunk_rows([row["id"]]))[row["id"]]
        indexes = [c["sequence_index"] for c in chunks]
        expected = expected_count(row["expected_chunks"], indexes)
        missing = missing_ranges(expected, indexes)
        # stream chunks are pieces of one stream, not files with durations of their own
        inconsistent = [] if row["mode"] == "stream" else inconsistent_chunks(chunks, expected)
        return Gaps(
            session_id=row["id"], expected_chunks=expected, chunks_received=len(chunks),
            missing=[Range(start=s, end=e) for s, e in missing],
            missing_count=sum(e - s + 1 for s, e in missing),
            inconsistent=[msgspec.convert(item, InconsistentChunk) for item in inconsistent],
            complete=bool(chunks) and not missing and not inconsistent,
        )

    @post("/{session_ref:str}/chunks", status_code=HTTP_201_CREATED, request_max_body_size=None,
          opt=openapi_opt(errors=[409, 413, 415], body=struct_form(ChunkFields)),
          summary="Upload one chunk (multipart: file, sequence_index, total_chunks, overlap_seconds, question_id)")
    async def upload_chunk(self, session_ref: FromPath[str], request: Request[Any, Any, Any],
                           principal: PrincipalDep, services: ServicesDep) -> Response[ChunkOut]:
        session = await get_session_row(session_ref, principal)
        return await receive_chunk(session, session_ref, request, principal, services)

    @post("/{session_ref:str}/complete", status_code=HTTP_200_OK, opt=openapi_opt(errors=[409], responses={202: {
              "description": "Completed; the join is queued (`join: \"queued\"`): poll `Location` for `asset_id`",
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionDetail"}}}}}),
          summary="Complete the session; `join=true` (or metadata.join) joins the chunks into one asset")
    async def complete_session(
        self,
        session_ref: FromPath[str],
        principal: PrincipalDep,
        services: ServicesDep,
        join: FromQuery[bool | None] = None,
        force: FromQuery[bool] = False,
        allow_gaps: FromQuery[bool] = False,
    ) -> Response[SessionDetail]:
        session = await get_session_row(session_ref, principal)
        return await complete(session, session_ref, principal, services, join=join, force=force,
                              allow_gaps=allow_gaps)

    @delete("/{session_ref:str}", status_code=HTTP_204_NO_CONTENT,
            summary="Delete the session, its chunk records and its stored chunk files")
    async def delete_session(self, session_ref: FromPath[str], principal: PrincipalDep,
                             services: ServicesDep) -> None:
        session = await get_session_row(session_ref, principal, include_deleted=True)
        session_id = session["id"]
        # marked first: no chunk can be added from here on (uploads check the status in their transaction)
        await RecordingSession.update({RecordingSession.status: "deleted", RecordingSession.updated_at: now()}).where(
            RecordingSession.id == session_id)
        storage = services.storage
        keys = {row["storage_key"] for row in await Chunk.select(Chunk.storage_key).where(
            Chunk.session == session_id)}
        prefix = chunk_key(principal.tenant_slug, session_id, 0, "bin").rsplit("/", 1)[0] + "/"
        keys.update([info.key async for info in storage.list(prefix)])
        for key in sorted(keys):
            await storage.delete(key)
        await RecordingSession.delete().where(RecordingSession.id == session_id)
