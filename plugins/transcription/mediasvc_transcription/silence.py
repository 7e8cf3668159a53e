"""Silence before speech recognition: a WAV whose every sample stays under a peak is not sent to an engine
(Whisper would invent words for it)."""

from __future__ import annotations

import array
import sys
import wave
from pathlib import Path

SILENCE_PEAK = 100  # of 32767: about -50 dBFS
BLOCK_FRAMES = 1 << 16


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate() or 1)


def is_silent(path: Path, peak: int = SILENCE_PEAK) -> bool:
    """True when no 16-bit sample of the WAV reaches ``peak``; stops at the first loud block."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            return False
        while frames := wav.readframes(BLOCK_FRAMES):
            samples = array.array("h", frames[: len(frames) // 2 * 2])
            if sys.byteorder == "big":
                samples.byteswap()
            if samples and (max(samples) >= peak or min(samples) <= -peak):
                return False
    return True
