"""Hook implementations of mediasvc-fasterwhisper: the ``faster-whisper`` engine and its base model."""

from __future__ import annotations

from typing import Any

from mediasvc_fasterwhisper.engine import FasterWhisperEngine
from mediasvc_fasterwhisper.models import model_specs
from mediasvc_fasterwhisper.settings import SECTION, FasterWhisperSettings
from mediasvc.plugin import hookimpl


@hookimpl
def register_settings() -> list[tuple[str, type]]:
    return [(SECTION, FasterWhisperSettings)]


@hookimpl
def register_models(settings: Any) -> list[Any]:
    return model_specs()


@hookimpl
def register_transcription_engines(settings: Any) -> list[Any]:
    import msgspec

    raw = settings.plugins.get(SECTION, {})
    return [FasterWhisperEngine(settings, msgspec.convert(raw, FasterWhisperSettings, strict=False))]
