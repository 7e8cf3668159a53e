"""The ``plugins.whispercpp`` settings section (env ``MEDIASVC_PLUGINS__WHISPERCPP__<KEY>``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from mediasvc.plugin import ConfigurationError

if TYPE_CHECKING:
    from mediasvc.plugin import Settings

SECTION = "whispercpp"


class WhisperCppSettings(msgspec.Struct, forbid_unknown_fields=True):
    model: str = "tiny.en"  # tiny.en | base, or any name with a ggml-<name>.bin in the models folder
    model_path: str = ""  # a ggml file to use for `model` instead of the models folder
    threads: int = 2
    language: str | None = None  # None: auto-detect (English for .en models)
    decoding: Literal["greedy", "beam"] = "greedy"
    beam_size: int = 5  # with decoding = "beam"
    allow_download: bool = False  # last resort at transcription time: the pinned official download (network)
    # OMP_WAIT_POLICY for whisper.cpp's OpenMP threads, applied before it loads unless the environment sets it:
    # "active" spins while waiting (a little faster on an idle machine, several times slower on a busy one)
    omp_wait_policy: Literal["passive", "active"] = "passive"

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ConfigurationError(f"plugins.{SECTION}.threads: must be at least 1")
        if self.beam_size < 1:
            raise ConfigurationError(f"plugins.{SECTION}.beam_size: must be at least 1")


def load_whispercpp_settings(settings: Settings) -> WhisperCppSettings:
    raw: Any = settings.plugins.get(SECTION, {})
    try:
        return msgspec.convert(raw, WhisperCppSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"plugins.{SECTION}: {exc}") from exc
