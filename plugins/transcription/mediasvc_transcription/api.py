"""The transcription API, mounted under /api/v1 behind the core's API-key guard (a key sees its tenant only)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Response, Router, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from mediasvc_transcription.processor import REQUEST_KEY
from mediasvc_transcription.schemas import (
    BatchItem,
    BatchTranscribeRequest,
    BatchTranscribeResult,
    Caption,
    ItemError,
    Segment,
    TranscribeAccepted,
    TranscribeRequest,
    TranscriptionState,
    TranscriptOut,
)
from mediasvc_transcription.sessions import SESSION_CAPTIONS, read_chunk_transcript, session_caption_key
from mediasvc_transcription.store import load_transcript, split_model
from mediasvc.plugin import (
    Asset, Chunk, Conflict, MediaServiceError, NotFound, Principal, PrincipalDep, ProcessingJob, Rendition,
    Services, ServicesDep, ValidationFailed, api_key_guard, get_asset_row, get_session_row, schedule_steps,
    serve_url,
)

STEP = "transcribe"
PENDING = ResponseSpec(TranscriptionState, description="No transcript yet; one is being made")


def transcript_out(row: dict[str, Any], settings: Any, captions: list[Caption]) -> TranscriptOut:
    engine, model = split_model(row["model"])
    return TranscriptOut(
        status="ready", language=row["language"], text=row["text"], duration_seconds=row["duration_seconds"],
        confidence=row["confidence"], engine=engine, model=model,
        segments=msgspec.convert(row["segments"] or [], list[Segment]), created_at=row["created_at"],
        transcript_url=serve_url(settings, row["storage_key"]) if row["storage_key"] else "",
        asset_id=row["asset"], session_id=row["session"], captions=captions)


async def _captions(asset_id: UUID, settings: Any) -> list[Caption]:
    rows = await Rendition.select(Rendition.name, Rendition.storage_key).where(
        Rendition.asset == asset_id, Rendition.kind == "captions").order_by(Rendition.name)
    out = []
    for row in rows:
        language, _, fmt = row["name"].rpartition(".")
        if fmt in ("vtt", "srt"):
            out.append(Caption(name=row["name"], format=fmt, language=language,
                               url=serve_url(settings, row["storage_key"])))
    return out


async def _session_captions(row: dict[str, Any], services: Services) -> list[Caption]:
    """WebVTT and SRT of the stitched transcript, stored beside its JSON."""
    out = []
    for fmt in SESSION_CAPTIONS:
        key = session_caption_key(row["storage_key"], fmt) if row["storage_key"] else ""
        if key and await services.storage.head(key) is not None:
            out.append(Caption(name=f"{row['language'] or 'und'}.{fmt}", format=fmt, language=row["language"],
                               url=serve_url(services.settings, key)))
    return out


async def _latest_step(asset_id: UUID) -> dict[str, Any] | None:
    return await ProcessingJob.select().where(ProcessingJob.asset == asset_id, ProcessingJob.step == STEP).order_by(
        ProcessingJob.created_at, ascending=False).first()


async def enqueue_transcription(services: Services, principal: Principal, asset_id: UUID,
                                request: TranscribeRequest) -> TranscribeAccepted:
    """Queue the transcribe step (after ``audio`` when the asset has no audio rendition yet)."""
    row = await get_asset_row(asset_id, principal)
    if row["kind"] not in ("video", "audio"):
        raise ValidationFailed(f"A {row['kind']} asset has no speech to transcribe", details={"kind": row["kind"]})
    if row["status"] in ("pending", "uploading"):
        raise Conflict("The asset has no original yet", details={"status": row["status"]})
    if STEP not in services.host.processors:
        raise ValidationFailed("The transcribe step is not installed")
    active = await ProcessingJob.count().where(ProcessingJob.asset == asset_id,
                                               ProcessingJob.status.is_in(["queued", "running"]))
    if active:
        raise Conflict("The asset is being processed; try again when it is done", details={"active_steps": active})
    options = {k: v for k, v in msgspec.to_builtins(request).items() if v}
    await Asset.raw("UPDATE assets SET metadata = COALESCE(metadata, jsonb_build_object()) || "
                    "jsonb_build_object({}::text, {}::jsonb) WHERE id = {}", REQUEST_KEY, json.dumps(options), asset_id)
    has_audio = await Rendition.count().where(Rendition.asset == asset_id, Rendition.kind == "audio")
    steps = [STEP] if has_audio or "audio" not in services.host.processors else ["audio", STEP]
    job_ids = await schedule_steps(services.queue, services.settings, services.host, asset_id, steps=steps)
    return TranscribeAccepted(asset_id=asset_id, job_id=job_ids[-1], job_ids=job_ids)


class TranscriptionController(Controller):
    tags = ("transcription",)

    @get("/assets/{asset_id:uuid}/transcription", summary="The asset's transcript (202 while one is being made)",
         responses={202: PENDING})
    async def get_transcription(self, asset_id: FromPath[UUID], principal: PrincipalDep,
                                services: ServicesDep) -> Response[TranscriptOut | TranscriptionState]:
        await get_asset_row(asset_id, principal)
        row = await load_transcript(asset_id=asset_id)
        if row is not None:
            return Response(transcript_out(row, services.settings, await _captions(asset_id, services.settings)),
                            status_code=HTTP_200_OK)
        step = await _latest_step(asset_id)
        if step is not None and step["status"] in ("queued", "running"):
            return Response(TranscriptionState(status=step["status"], asset_id=asset_id, job_id=step["id"],
                                               progress=step["progress"]), status_code=HTTP_202_ACCEPTED)
        details: dict[str, Any] = {"asset_id": str(asset_id)}
        if step is not None:
            details.update(step=step["status"], error=step["error"])
        raise NotFound(f"Asset {asset_id} has no transcript", details=details)

    @post("/assets/{asset_id:uuid}/transcribe", status_code=HTTP_202_ACCEPTED,
          summary="Transcribe the asset (again), optionally with another language or model")
    async def transcribe(self, asset_id: FromPath[UUID], principal: PrincipalDep, services: ServicesDep,
                         data: JSONBody[TranscribeRequest | None] = None) -> TranscribeAccepted:
        return await enqueue_transcription(services, principal, asset_id, data or TranscribeRequest())

    @post("/transcriptions/batch", status_code=HTTP_202_ACCEPTED,
          summary="Transcribe many assets: one job each; problems are reported per asset")
    async def batch(self, data: JSONBody[BatchTranscribeRequest], principal: PrincipalDep,
                    services: ServicesDep) -> BatchTranscribeResult:
        request = TranscribeRequest(language=data.language, model=data.model)
        items: list[BatchItem] = []
        for raw_id in dict.fromkeys(data.asset_ids):  # each asset once, in the order given
            try:
                asset_id = UUID(raw_id)
            except ValueError:
                items.append(BatchItem(asset_id=raw_id, status="error",
                                       error=ItemError(code="validation_failed", message="not a UUID")))
                continue
            try:
                accepted = await enqueue_transcription(services, principal, asset_id, request)
            except MediaServiceError as exc:
                items.append(BatchItem(asset_id=raw_id, status="error",
                                       error=ItemError(code=exc.code, message=exc.message)))
            else:
                items.append(BatchItem(asset_id=raw_id, status="queued", job_id=accepted.job_id))
        queued = sum(1 for item in items if item.status == "queued")
        return BatchTranscribeResult(queued=queued, failed=len(items) - queued, items=items)

    @get("/sessions/{session_ref:str}/transcript",
         summary="The recording session's stitched transcript (202 while chunks are being transcribed)",
         responses={202: PENDING})
    async def session_transcript(self, session_ref: FromPath[str], principal: PrincipalDep,
                                 services: ServicesDep) -> Response[TranscriptOut | TranscriptionState]:
        session = await get_session_row(session_ref, principal)
        row = await load_transcript(session_id=session["id"])
        if row is not None:
            captions = await _session_captions(row, services)
            return Response(transcript_out(row, services.settings, captions), status_code=HTTP_200_OK)
        chunks = await Chunk.select().where(Chunk.session == session["id"])
        if not chunks:
            raise NotFound(f"Session {session_ref} has no chunks to transcribe",
                           details={"session_id": str(session["id"])})
        done = sum([1 for c in chunks if await read_chunk_transcript(services.storage, c) is not None])
        status = "session_active" if session["status"] == "active" else "waiting_for_chunks"
        return Response(TranscriptionState(status=status, session_id=session["id"], chunks=len(chunks),
                                           chunks_transcribed=done), status_code=HTTP_202_ACCEPTED)


def transcription_router() -> Router:
    return Router(path="/api/v1", guards=[api_key_guard], route_handlers=[TranscriptionController])
