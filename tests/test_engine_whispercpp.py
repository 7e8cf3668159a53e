"""The ``whispercpp`` transcription engine on espeak-ng speech, silence, long input and garbage."""

from __future__ import annotations

import threading
import wave
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from mediasvc_transcription.wer import word_error_rate

from mediasvc.contracts import TranscriptionEngine
from mediasvc.errors import ConfigurationError, ValidationFailed
from mediasvc.plugins import PluginHost
from mediasvc.processing import PermanentProcessingError
from tests.speech import HAVE_ESPEAK, read_mono, speak_wav, write_wav
from tests.test_whisper_models import shared_models_dir, whisper_settings

pytestmark = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")

TEXT = ("Please open the window and let some fresh air into the room. Thank you for joining this interview. "
        "Take your time and describe the steps you followed. The journey takes about three hours, "
        "so remember to pack some water and a good book.")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> TranscriptionEngine:
    host = PluginHost(whisper_settings(shared_models_dir(tmp_path_factory)))  # 2 threads, passive OpenMP waits
    return host.transcription_engines["whispercpp"]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak_wav(TEXT, tmp_path_factory.mktemp("speech") / "speech.wav")  # about 16 s


def assert_well_timed(segments: list, duration: float) -> None:
    assert segments
    for before, after in pairwise(segments):
        assert before.end <= after.start
    for segment in segments:
        assert 0 <= segment.start <= segment.end <= duration


def test_english_speech(engine: TranscriptionEngine, speech: Path) -> None:
    result = engine.transcribe(speech)
    assert word_error_rate(TEXT, result.text) <= 0.15, result.text
    assert (result.engine, result.model, result.language) == ("whispercpp", "tiny.en", "en")
    with wave.open(str(speech)) as wav:
        assert result.duration_seconds == pytest.approx(wav.getnframes() / 16000)
    assert_well_timed(result.segments, result.duration_seconds)
    assert result.confidence is not None and 0.5 < result.confidence <= 1
    assert all(segment.confidence is not None and 0 < segment.confidence <= 1 for segment in result.segments)


def test_long_input_keeps_every_word_once(engine: TranscriptionEngine, speech: Path, tmp_path: Path) -> None:
    samples = read_mono(speech)
    long = write_wav(tmp_path / "long.wav", np.concatenate([samples, np.zeros(2 * 16000, np.int16), samples]))
    result = engine.transcribe(long)
    assert result.duration_seconds > 30  # more than one whisper window
    assert word_error_rate(f"{TEXT} {TEXT}", result.text) <= 0.15, result.text
    words = result.text.lower().split()
    for word in ("window", "interview", "followed", "journey"):
        assert sum(word in w for w in words) == 2, result.text
    assert_well_timed(result.segments, result.duration_seconds)
    second_half = [s for s in result.segments if "window" in s.text.lower()][-1]
    assert second_half.start >= len(samples) / 16000  # the repeat is placed after the pause, not before


def test_silence_gives_an_empty_transcript(engine: TranscriptionEngine, tmp_path: Path) -> None:
    quiet = np.random.default_rng(1).normal(0, 3, 3 * 16000).astype(np.int16)  # faint noise, -80 dBFS
    result = engine.transcribe(write_wav(tmp_path / "silence.wav", quiet))
    assert (result.text, result.segments, result.language) == ("", [], "en")
    assert result.duration_seconds == pytest.approx(3.0)


def test_garbage_and_wrong_formats_are_clear_errors(engine: TranscriptionEngine, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(2).bytes(4000))
    with pytest.raises(ValidationFailed, match="not a readable WAV") as failed:
        engine.transcribe(garbage)
    assert isinstance(failed.value, PermanentProcessingError)  # the transcribe step fails without retrying
    assert failed.value.status_code == 422
    eight_khz = write_wav(tmp_path / "phone.wav", np.zeros(8000, np.int16), sample_rate=8000)
    with pytest.raises(ValidationFailed, match="expected 16 kHz"):
        engine.transcribe(eight_khz)


def test_one_model_serves_concurrent_calls(engine: TranscriptionEngine, tmp_path: Path) -> None:
    short = speak_wav("Thank you for joining this interview.", tmp_path / "short.wav")
    texts: list[str] = []
    threads = [threading.Thread(target=lambda: texts.append(engine.transcribe(short).text)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(texts) == 2 and texts[0] == texts[1]
    assert word_error_rate("Thank you for joining this interview.", texts[0]) <= 0.2, texts


def test_settings_are_validated(tmp_path: Path) -> None:
    host = PluginHost(whisper_settings(tmp_path, threads=0))
    with pytest.raises(ConfigurationError, match="plugins.whispercpp.threads"):
        host.validate()
    host = PluginHost(whisper_settings(tmp_path, decoding="sampling"))
    with pytest.raises(ConfigurationError, match="whispercpp"):
        host.validate()


def test_multilingual_model_detects_the_language(engine: TranscriptionEngine, tmp_path: Path) -> None:
    short = speak_wav("Thank you for joining this interview.", tmp_path / "short.wav")
    result = engine.transcribe(short, model="whisper-base")  # converted from the two registry parts on first use
    assert (result.model, result.language) == ("base", "en")
    assert word_error_rate("Thank you for joining this interview.", result.text) <= 0.2, result.text
