"""Hook implementations of mediasvc-whispercpp: the ``whispercpp`` engine and its ggml models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mediasvc.plugin import ModelSpec, TranscriptionEngine, hookimpl
from mediasvc_whispercpp import resolve
from mediasvc_whispercpp.engine import WhisperCppEngine
from mediasvc_whispercpp.settings import SECTION, WhisperCppSettings, load_whispercpp_settings

if TYPE_CHECKING:
    from mediasvc.plugin import Settings

LICENCE = resolve.LICENCE


@hookimpl
def register_settings() -> list[tuple[str, type]]:
    return [(SECTION, WhisperCppSettings)]


@hookimpl
def register_models(settings: Settings) -> list[ModelSpec]:
    """Every official ggml file pinned in ``official.py``, plus the models a registry package converts into."""
    return [resolve.model_spec(name) for name in resolve.model_names()]


@hookimpl
def register_transcription_engines(settings: Settings) -> list[TranscriptionEngine]:
    return [WhisperCppEngine(settings, load_whispercpp_settings(settings))]
