"""Speech for the transcription tests and benchmarks: espeak-ng speaks a known text, PyAV makes it 16 kHz mono."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import av
import numpy as np

HAVE_ESPEAK = shutil.which("espeak-ng") is not None


def speak_wav(text: str, path: Path, *, sample_rate: int = 16000, words_per_minute: int = 150,
              voice: str = "en-us") -> Path:
    """Write ``text`` spoken by espeak-ng as a mono 16-bit WAV at ``sample_rate`` to ``path``."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text],
                       check=True, capture_output=True, timeout=300)
        samples = read_mono(raw, sample_rate)
    write_wav(path, samples, sample_rate)
    return path


def read_mono(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """Any audio file as int16 mono samples at ``sample_rate``."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = 16000) -> Path:
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.astype(np.int16).tobytes())
    return path
