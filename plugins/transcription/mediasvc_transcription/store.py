"""Transcript rows: one per asset (or recording session), replaced on a re-run. A session's row is written in
one transaction with its ``transcription.ready`` event; an asset's event goes out with the step's result."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from mediasvc.plugin import Transcript, Transcription, emit_event

TRANSCRIPTION_READY = "transcription.ready"


def ready_payload(transcription: Transcription, *, storage_key: str, url: str,
                  asset_id: UUID | None = None, session_id: UUID | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "text": transcription.text, "language": transcription.language,
        "duration": transcription.duration_seconds,
        "segments": msgspec.to_builtins(transcription.segments), "storage_key": storage_key, "url": url,
        "model": transcription.model, "engine": transcription.engine, "confidence": transcription.confidence,
    }
    if asset_id is not None:
        payload["asset_id"] = str(asset_id)
    if session_id is not None:
        payload["session_id"] = str(session_id)
    return payload


async def save_transcript(transcription: Transcription, *, tenant_id: UUID, storage_key: str, url: str,
                          asset_id: UUID | None = None, session_id: UUID | None = None,
                          emit: bool = True) -> UUID:
    """Replace the asset's (or session's) transcript and, with ``emit``, emit ``transcription.ready`` in the
    same transaction; returns the row id. The ``transcribe`` step passes ``emit=False``: its result carries it."""
    where = Transcript.asset == asset_id if asset_id is not None else Transcript.session == session_id
    row = Transcript(asset=asset_id, session=session_id, language=transcription.language,
                     text=transcription.text, segments=msgspec.to_builtins(transcription.segments),
                     model=f"{transcription.engine}:{transcription.model}",
                     duration_seconds=transcription.duration_seconds, confidence=transcription.confidence,
                     storage_key=storage_key)
    async with Transcript._meta.db.transaction():
        lock = f"transcript:{asset_id or session_id}"  # two runs at once never leave two rows
        await Transcript.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", lock)
        await Transcript.delete().where(where)
        await Transcript.insert(row)
        if emit:
            await emit_event(TRANSCRIPTION_READY, ready_payload(
                transcription, storage_key=storage_key, url=url, asset_id=asset_id, session_id=session_id),
                tenant_id=tenant_id)
    return row.id


async def load_transcript(*, asset_id: UUID | None = None, session_id: UUID | None = None) -> dict[str, Any] | None:
    where = Transcript.asset == asset_id if asset_id is not None else Transcript.session == session_id
    return await Transcript.select().where(where).order_by(Transcript.created_at, ascending=False).output(
        load_json=True).first()


def split_model(stored: str) -> tuple[str, str]:
    """The row's ``model`` column holds ``engine:model``."""
    engine, _, model = stored.partition(":")
    return (engine, model) if model else ("", engine)
