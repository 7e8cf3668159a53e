"""Accepting one chunk of a recording session: the multipart body is streamed to a temp file (hashed, counted,
sniffed), its duration probed, the bytes stored at ``chunk_key(...)``, and only then the chunk row and its
``chunk_uploaded`` event written, in one transaction that also checks the session is still active.

The duration comes from the first installed media prober that reads the chunk's type (``register_media_probers``;
the video plugin's). Without one it is null, and ``/gaps`` reports the chunk as ``no_duration``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Any
from uuid import uuid4

import msgspec
from litestar import Request, Response
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from mediasvc import events
from mediasvc.api.sessions_rows import chunk_out, now, session_profile
from mediasvc.api.sessions_schemas import ChunkFields, ChunkOut
from mediasvc.auth import Principal
from mediasvc.errors import Conflict, ValidationFailed
from mediasvc.ingest.sessions_join import store_file
from mediasvc.ingest.sessions_stream import check_stream_chunk, is_stream
from mediasvc.ingest.sessions_multipart import ReceivedFile, check_content_length, receive_form
from mediasvc.ingest.validation import Sniffed, check_content, check_declared, sanitize_filename
from mediasvc.services import Services
from mediasvc.storage_keys import chunk_key
from mediasvc.tables import Chunk, RecordingSession
from mediasvc.text_rules import check_text

log = logging.getLogger("mediasvc.sessions")


def chunk_fields(raw: dict[str, str]) -> ChunkFields:
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


async def receive_chunk(session: dict[str, Any], session_ref: str, request: Request[Any, Any, Any],
                        principal: Principal, services: Services) -> Response[ChunkOut]:
    """Check, receive and store one chunk upload for ``session`` (a row of the caller's tenant)."""
    if session["status"] != "active":
        raise Conflict(f"Session {session_ref} is {session['status']}: it takes no more chunks",
                       details={"status": session["status"]})
    profile_name = session["profile"]
    profile = session_profile(services, session)
    check_content_length(request.headers.get("content-length"), profile.max_bytes)
    state: dict[str, Any] = {}
    stream = is_stream(session)  # stream chunks are checked once their index is known (check_stream_chunk)

    def check_name(filename: str) -> None:
        check_text(filename, "file.filename")
        if not stream:
            state["extension"] = check_declared(profile_name, profile, sanitize_filename(filename), None)

    def check_head(head: bytes) -> None:
        if not stream:
            state["sniffed"] = check_content(profile_name, profile, state["extension"], head)

    temp_dir = Path(services.settings.data_dir) / "tmp" / "chunks"
    async with receive_form(request.stream(), content_type=request.headers.get("content-type"),
                            temp_dir=temp_dir, max_bytes=profile.max_bytes, check_name=check_name,
                            check_head=check_head) as form:
        fields = chunk_fields(form.fields)
        if form.file is None:
            raise ValidationFailed("The upload has no file part (a part named 'file' with a filename)")
        if fields.session_id and fields.session_id not in (str(session["id"]), session["client_id"]):
            raise ValidationFailed("session_id does not match the session in the path",
                                   details={"session_id": fields.session_id})
        if stream:
            state["extension"], state["sniffed"] = check_stream_chunk(profile_name, profile, fields.sequence_index,
                                                                      form.file)
        return await store_chunk(session, fields, form.file, state["extension"], state["sniffed"], principal,
                                 services)


async def probe_chunk_duration(services: Services, path: Path, sniffed: Sniffed) -> float | None:
    """Seconds of media in the chunk, or None when it cannot be told or no installed prober reads its type."""
    prober = services.host.media_prober(sniffed.mime)
    if prober is None:
        log.info("no media prober reads %s (install mediasvc-video): chunk duration left unknown", sniffed.mime)
        return None
    return await asyncio.to_thread(prober.duration, path)


def check_existing(existing: dict[str, Any] | None, fields: ChunkFields, file: ReceivedFile) -> None:
    if existing is not None and existing["sha256"] != file.sha256 and not fields.replace:
        raise Conflict(
            f"Chunk {fields.sequence_index} was already uploaded with different content; send replace=true "
            "to replace it",
            details={"sequence_index": fields.sequence_index, "existing_sha256": existing["sha256"],
                     "sha256": file.sha256},
        )


async def store_chunk(session: dict[str, Any], fields: ChunkFields, file: ReceivedFile, extension: str,
                      sniffed: Sniffed, principal: Principal, services: Services) -> Response[ChunkOut]:
    session_id, seq = session["id"], fields.sequence_index
    existing = await Chunk.select().where(Chunk.session == session_id, Chunk.sequence_index == seq).first()
    check_existing(existing, fields, file)
    if existing is not None and existing["sha256"] == file.sha256:
        return Response(chunk_out(existing), status_code=HTTP_200_OK)  # the same bytes again
    duration = await probe_chunk_duration(services, file.path, sniffed)
    key = chunk_key(principal.tenant_slug, session_id, seq, extension)
    storage = services.storage
    stored_new_key = False
    created = now()
    try:
        async with Chunk._meta.db.transaction():
            # one writer per (session, index) at a time: the stored bytes and the row always agree
            await Chunk.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", f"chunk:{session_id}:{seq}")
            current = await Chunk.select().where(Chunk.session == session_id, Chunk.sequence_index == seq).first()
            check_existing(current, fields, file)
            if current is not None and current["sha256"] == file.sha256:
                return Response(chunk_out(current), status_code=HTTP_200_OK)
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
                await Chunk.insert(Chunk(id=chunk_id, session=session_id, sequence_index=seq, created_at=created,
                                         **values))
            else:
                chunk_id = current["id"]
                await Chunk.update({getattr(Chunk, k): v for k, v in values.items()} | {Chunk.created_at: created}
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
    return Response(chunk_out(row), status_code=HTTP_200_OK if current is not None else HTTP_201_CREATED)
