"""Hook implementations of mediasvc-transcription: the ``transcribe`` step, chunk transcription and session
stitching jobs, the sink that starts them, and the transcription API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mediasvc_transcription.api import transcription_router
from mediasvc_transcription.processor import TranscribeProcessor
from mediasvc_transcription.sessions import (
    CHUNK_JOB,
    SESSION_JOB,
    ChunkTranscriptionSink,
    stitch_session,
    transcribe_chunk,
)
from mediasvc_transcription.settings import SECTION, TranscriptionSettings, transcription_settings
from mediasvc.plugin import hookimpl


@hookimpl
def register_settings() -> list[tuple[str, type]]:
    return [(SECTION, TranscriptionSettings)]


@hookimpl
def register_processors(settings: Any) -> list[Any]:
    return [TranscribeProcessor(timeout_seconds=transcription_settings(settings).timeout_seconds)]


@hookimpl
def register_jobs() -> list[tuple[str, Callable[..., Any]]]:
    return [(CHUNK_JOB, transcribe_chunk), (SESSION_JOB, stitch_session)]


@hookimpl
def register_event_sinks(settings: Any) -> list[Any]:
    return [ChunkTranscriptionSink(settings)] if transcription_settings(settings).chunks else []


@hookimpl
def register_routes(settings: Any) -> list[Any]:
    return [transcription_router()]


@hookimpl
def register_event_types() -> list[str]:
    from mediasvc_transcription.store import TRANSCRIPTION_READY

    return [TRANSCRIPTION_READY]
