"""Any stored audio/video file as 16 kHz mono 16-bit WAV (what engines read), opened with the safe options."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import av

from mediasvc_video.probe_local import UnsafeInput, open_local
from mediasvc.plugin import PermanentProcessingError

RATE = 16000


def _write(out: Any, frames: list[Any]) -> int:
    written = 0
    for frame in frames:
        out.writeframes(bytes(frame.planes[0])[: frame.samples * 2])
        written += frame.samples
    return written


def to_wav(source: Path, target: Path) -> float | None:
    """Decode the first audio stream of ``source`` into ``target``; seconds written, None without audio.
    Unreadable or undecodable input raises ``PermanentProcessingError``."""
    if source.stat().st_size == 0:
        raise PermanentProcessingError("the file is empty")
    try:
        container = open_local(source)
    except UnsafeInput as exc:
        raise PermanentProcessingError(f"not a supported audio/video file: {exc}") from exc
    except av.FFmpegError as exc:
        raise PermanentProcessingError(f"cannot read the media: {exc}") from exc
    try:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        written = 0
        with wave.open(str(target), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            for frame in container.decode(container.streams.audio[0]):
                written += _write(out, resampler.resample(frame))
            written += _write(out, resampler.resample(None))
    except av.FFmpegError as exc:
        raise PermanentProcessingError(f"cannot decode the audio: {exc}") from exc
    finally:
        container.close()
    if written == 0:
        raise PermanentProcessingError("no audio could be decoded")
    return written / RATE


def is_wav_16k_mono(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getframerate() == RATE and wav.getnchannels() == 1 and wav.getsampwidth() == 2
    except (wave.Error, EOFError):
        return False
