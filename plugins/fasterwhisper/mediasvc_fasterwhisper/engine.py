"""The ``faster-whisper`` engine: CTranslate2 Whisper on the CPU, int8, weights from registry packages only."""

from __future__ import annotations

import math
import os
import threading
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediasvc_fasterwhisper.models import resolve
from mediasvc_fasterwhisper.settings import FasterWhisperSettings
from mediasvc.plugin import Transcription, TranscriptSegment

if TYPE_CHECKING:
    from mediasvc.plugin import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a model folder is always local; never ask a hub

_models: dict[tuple[str, str, int], Any] = {}
_models_lock = threading.Lock()


def _load(path: Path, compute_type: str, threads: int) -> Any:
    """One loaded model per (folder, compute type, threads) in the process: loading takes seconds."""
    key = (str(path), compute_type, threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            from faster_whisper import WhisperModel

            model = WhisperModel(str(path), device="cpu", compute_type=compute_type, cpu_threads=threads,
                                 local_files_only=True)
            _models[key] = model
        return model


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate() or 1)


def _segment(raw: Any, duration: float) -> TranscriptSegment:
    start = min(max(float(raw.start), 0.0), duration)
    end = min(max(float(raw.end), start), duration)
    words = getattr(raw, "words", None) or []
    if words:
        confidence = float(sum(w.probability for w in words) / len(words))
    else:
        confidence = math.exp(float(raw.avg_logprob)) if raw.avg_logprob is not None else None
    return TranscriptSegment(start=round(start, 3), end=round(end, 3), text=raw.text.strip(),
                             confidence=None if confidence is None else round(confidence, 4))


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(self, settings: Settings, options: FasterWhisperSettings) -> None:
        self.settings = settings
        self.options = options

    def transcribe(self, audio_path: Path, *, language: str | None = None, model: str | None = None,
                   threads: int | None = None) -> Transcription:
        model_name = model or self.options.model
        folder = resolve(model_name, self.settings)
        cpu_threads = self.options.threads or threads or os.cpu_count() or 1
        whisper = _load(folder, self.options.compute_type, cpu_threads)
        duration = wav_duration(Path(audio_path))
        if model_name.endswith(".en") and language not in (None, "", "en"):
            language = "en"  # an English-only model cannot do anything else
        raw_segments, info = whisper.transcribe(
            str(audio_path), language=language or None, beam_size=self.options.beam_size,
            vad_filter=self.options.vad, condition_on_previous_text=False,
            word_timestamps=self.options.word_timestamps,
        )
        segments = [_segment(s, duration) for s in raw_segments if s.text.strip()]
        segments = [s for s in segments if s.start < duration]  # nothing past the end of the audio
        scored = [s.confidence for s in segments if s.confidence is not None]
        return Transcription(
            text=" ".join(s.text for s in segments).strip(), language=info.language or (language or ""),
            duration_seconds=round(duration, 3), segments=segments, model=model_name, engine=self.name,
            confidence=round(sum(scored) / len(scored), 4) if scored else None,
        )
