"""The ``whispercpp`` transcription engine: whisper.cpp through pywhispercpp, given a ggml file path.

whisper.cpp walks audio longer than one 30 s window itself, seeking to the last timestamp token it decoded, so
words at a window boundary are neither lost nor repeated. Loaded models are kept per (path, threads, decoding)
for the life of the process; a whisper.cpp context is not thread-safe, so each has its own lock.

whisper.cpp's threads wait for each other through OpenMP. By default they spin, which on a machine busy with other
work (transcodes, other transcriptions) made 2 threads 3-6x slower than letting them sleep; the plugin therefore
sets ``OMP_WAIT_POLICY=passive`` before pywhispercpp loads, unless the environment already sets it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mediasvc.plugin import Transcription, TranscriptSegment
from mediasvc_whispercpp.audio import SAMPLE_RATE, is_silent, read_wav
from mediasvc_whispercpp.resolve import model_name, resolve
from mediasvc_whispercpp.settings import WhisperCppSettings

if TYPE_CHECKING:
    from mediasvc.plugin import Settings

log = logging.getLogger("mediasvc.whispercpp")

NAME = "whispercpp"
# What whisper models write for audio without speech: "[BLANK_AUDIO]", "(music)", "[ Silence ]"...
_NON_SPEECH = re.compile(r"^\s*(\[[^\]]*\]|\([^)]*\)|\*[^*]*\*)\s*$")


@dataclass
class _LoadedModel:
    model: Any  # pywhispercpp.model.Model
    multilingual: bool
    lock: threading.Lock = field(default_factory=threading.Lock)


_models: dict[tuple[Path, int, str, int], _LoadedModel] = {}
_models_lock = threading.Lock()


def _load(path: Path, threads: int, config: WhisperCppSettings) -> _LoadedModel:
    key = (path.resolve(), threads, config.decoding, config.beam_size)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is None:
            # whisper.cpp's OpenMP runtime reads this once, when pywhispercpp's extension loads
            os.environ.setdefault("OMP_WAIT_POLICY", config.omp_wait_policy.upper())
            import _pywhispercpp as pw
            from pywhispercpp.model import Model

            pw.whisper_log_set(_whisper_log)
            params: dict[str, Any] = {"n_threads": threads, "print_progress": False, "print_realtime": False,
                                      "no_context": True, "suppress_nst": True}
            if config.decoding == "beam":
                params["beam_search"] = {"beam_size": config.beam_size, "patience": -1.0}
            model = Model(str(path), params_sampling_strategy=1 if config.decoding == "beam" else 0, **params)
            loaded = _LoadedModel(model, bool(pw.whisper_is_multilingual(model._ctx)))
            _models[key] = loaded
        return loaded


def _whisper_log(level: int, text: str, *args: Any) -> None:
    log.debug("whisper.cpp: %s", text.rstrip())


class WhisperCppEngine:
    name = NAME

    def __init__(self, settings: Settings, config: WhisperCppSettings) -> None:
        self.settings = settings
        self.config = config

    def transcribe(self, audio_path: Path, *, language: str | None = None, model: str | None = None,
                   threads: int | None = None) -> Transcription:
        samples = read_wav(Path(audio_path))
        duration = samples.size / SAMPLE_RATE
        name = model_name(model or self.config.model)
        language = language or self.config.language
        if name.endswith(".en"):
            language = "en"
        loaded = _load(resolve(self.settings, name), threads or self.config.threads, self.config)
        if is_silent(samples):
            undetermined = "und" if loaded.multilingual else "en"
            return Transcription(text="", language=language or undetermined, duration_seconds=duration, segments=[],
                                 model=name, engine=NAME)
        with loaded.lock:
            segments, detected = _run(loaded, samples, language or "auto", duration)
        texts = [segment for segment, _ in segments]
        probabilities = [p for _, token_ps in segments for p in token_ps]
        return Transcription(
            text=" ".join(segment.text for segment in texts),
            language=detected,
            duration_seconds=duration,
            segments=texts,
            model=name,
            engine=NAME,
            confidence=float(np.mean(probabilities)) if probabilities else None,
        )


def _run(loaded: _LoadedModel, samples: np.ndarray, language: str,
         duration: float) -> tuple[list[tuple[TranscriptSegment, list[float]]], str]:
    """Segments (with their text tokens' probabilities) and the language whisper.cpp used or detected."""
    import _pywhispercpp as pw

    model = loaded.model
    model.transcribe(samples, language=language if loaded.multilingual else "en")
    ctx = model._ctx
    end_of_text = pw.whisper_token_eot(ctx)
    segments: list[tuple[TranscriptSegment, list[float]]] = []
    for i in range(pw.whisper_full_n_segments(ctx)):
        text = pw.whisper_full_get_segment_text(ctx, i).decode("utf-8", errors="replace").strip()
        if not text or _NON_SPEECH.match(text):
            continue
        token_ps = [float(pw.whisper_full_get_token_p(ctx, i, j)) for j in range(pw.whisper_full_n_tokens(ctx, i))
                    if pw.whisper_full_get_token_id(ctx, i, j) < end_of_text]  # text tokens, not timestamps
        # whisper.cpp times are in 10 ms units; greedy decoding can put the last end past the audio: clamp
        end = min(pw.whisper_full_get_segment_t1(ctx, i) / 100, duration)
        start = min(pw.whisper_full_get_segment_t0(ctx, i) / 100, end)
        if segments and start < segments[-1][0].end:
            start = segments[-1][0].end
            end = max(end, start)
        confidence = float(np.mean(token_ps)) if token_ps else None
        segments.append((TranscriptSegment(start=start, end=end, text=text, confidence=confidence), token_ps))
    detected = pw.whisper_lang_str(pw.whisper_full_lang_id(ctx)) if loaded.multilingual else "en"
    return segments, detected
