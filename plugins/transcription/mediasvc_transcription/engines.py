"""Choosing a speech-to-text engine and running it off the event loop, at most ``max_concurrent`` at once."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from mediasvc_transcription.settings import TranscriptionSettings
from mediasvc.plugin import PermanentProcessingError, Transcription, TranscriptionEngine

log = logging.getLogger("mediasvc.transcription")

PREFERRED = ("whispercpp", "faster-whisper")

_semaphores: dict[int, threading.BoundedSemaphore] = {}
_semaphores_lock = threading.Lock()


def _semaphore(limit: int) -> threading.BoundedSemaphore:
    """One process-wide semaphore per limit: the model's memory bounds concurrency, not the event loop."""
    with _semaphores_lock:
        return _semaphores.setdefault(limit, threading.BoundedSemaphore(max(1, limit)))


def pick_engine(engines: dict[str, TranscriptionEngine], wanted: str) -> TranscriptionEngine:
    """The configured engine, else the first installed of ``PREFERRED``, else any installed one."""
    if wanted in engines:
        return engines[wanted]
    for name in (*PREFERRED, *sorted(engines)):
        if name in engines:
            log.warning("transcription engine %r is not installed; using %r", wanted, name)
            return engines[name]
    raise PermanentProcessingError("no transcription engine is installed (mediasvc-whispercpp or "
                                   "mediasvc-fasterwhisper)")


async def transcribe(engine: TranscriptionEngine, wav: Path, options: TranscriptionSettings, *,
                     language: str | None = None, model: str | None = None) -> Transcription:
    semaphore = _semaphore(options.max_concurrent)

    def run() -> Transcription:
        with semaphore:
            return engine.transcribe(wav, language=language or options.language or None,
                                     model=model or options.model or None, threads=options.threads)

    return await asyncio.to_thread(run)
