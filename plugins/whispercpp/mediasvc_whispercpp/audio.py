"""Reading the 16 kHz WAV the engine transcribes, with a clear error for anything else."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from mediasvc.plugin import PermanentProcessingError, ValidationFailed

SAMPLE_RATE = 16000
SILENCE_PEAK = 10 ** (-50 / 20)  # below -50 dBFS everywhere: nothing to transcribe


class UnreadableAudio(ValidationFailed, PermanentProcessingError):
    """Not a 16 kHz 16-bit PCM WAV: a 422 through the API, and a step that fails without retries."""


def read_wav(path: Path) -> np.ndarray:
    """Mono float32 samples in [-1, 1] of a 16 kHz 16-bit PCM WAV (stereo is averaged)."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise UnreadableAudio(f"{path.name} is not a readable WAV file ({exc})", details={"path": str(path)}) from exc
    if width != 2 or rate != SAMPLE_RATE or channels not in (1, 2):
        raise UnreadableAudio(
            f"{path.name}: expected 16 kHz 16-bit mono or stereo PCM, got {rate} Hz, {8 * width}-bit, "
            f"{channels} channels", details={"path": str(path)})
    samples = np.frombuffer(frames[: len(frames) - len(frames) % (2 * channels)], dtype="<i2")
    return samples.reshape(-1, channels).mean(axis=1, dtype=np.float32) / 32768.0


def is_silent(samples: np.ndarray) -> bool:
    return samples.size == 0 or float(np.max(np.abs(samples))) < SILENCE_PEAK
