"""``[plugins.transcription]``: which engine and model the ``transcribe`` step uses, and how many run at once."""

from __future__ import annotations

import msgspec

SECTION = "transcription"


class TranscriptionSettings(msgspec.Struct, forbid_unknown_fields=True):
    engine: str = "whispercpp"  # a registered engine name; when it is not installed, another installed one is used
    model: str = ""  # empty: the engine's own default
    language: str = ""  # empty: detected (English-only models say "en")
    threads: int = 2  # CPU threads per transcription
    max_concurrent: int = 1  # transcriptions at once per worker process: each holds a model's memory
    timeout_seconds: int = 3600  # one step or chunk job
    chunks: bool = True  # transcribe recording-session chunks as they arrive and stitch the session transcript


def transcription_settings(settings: object) -> TranscriptionSettings:
    raw = getattr(settings, "plugins", {}).get(SECTION, {}) or {}
    return msgspec.convert(raw, TranscriptionSettings, strict=False)
