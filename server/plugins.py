"""The plugin manager (one per app or worker) and a typed facade over its hook calls.

Plugins are found by entry point (group ``mediasvc``); the core's own hook implementations are registered first.
``settings.blocked_plugins`` (env ``MEDIASVC_BLOCKED_PLUGINS=a,b``) blocks plugins by entry-point name.
Start-up fails loudly, naming the culprit, on a misspelled hook, a duplicate name or an unknown backend.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable

import msgspec
import pluggy

from mediasvc import hookspecs
from mediasvc.errors import ConfigurationError
from mediasvc.ingest.tus_settings import tus_settings
from mediasvc.profiles import missing_step_message

if TYPE_CHECKING:
    from saq import CronJob

    from mediasvc.contracts import (
        Analyzer,
        ChunkJoiner,
        EventSink,
        MediaProber,
        ModelSpec,
        Processor,
        StorageBackend,
        TranscriptionEngine,
    )
    from mediasvc.settings import Settings

ENTRY_POINT_GROUP = "mediasvc"
CORE_PLUGINS = ("mediasvc.core_plugin", "mediasvc.ingest.tus_jobs")

log = logging.getLogger("mediasvc.plugins")


class PluginInfo(msgspec.Struct, frozen=True):
    name: str
    version: str
    hooks: list[str]
    source: str  # "core" or the distribution name
    blocked: bool = False


def build_plugin_manager(settings: Settings, extra_plugins: Sequence[object] = ()) -> pluggy.PluginManager:
    """Core hooks, then entry points, then ``extra_plugins`` (objects or modules; tests and embedding apps)."""
    pm = pluggy.PluginManager("mediasvc")
    pm.add_hookspecs(hookspecs)
    for name in settings.blocked_plugins:
        pm.set_blocked(name)
    for module_name in CORE_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    try:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    except Exception as exc:  # an entry point whose import fails: name it instead of a bare traceback
        raise ConfigurationError(f"A mediasvc plugin failed to import: {exc!r}") from exc
    for plugin in extra_plugins:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise ConfigurationError(f"Plugin {name!r} implements an unknown hook: {exc}") from exc
    if settings.trace_hooks:
        trace_log = logging.getLogger("mediasvc.hooks")
        pm.trace.root.setwriter(lambda message: trace_log.info(message.rstrip()))
        pm.enable_tracing()
    return pm


def _flatten(results: list[list[Any] | None]) -> list[Any]:
    return [item for result in results if result for item in result]


def _unique(what: str, items: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        if item.name in found:
            raise ConfigurationError(f"Duplicate {what} name {item.name!r}: {type(found[item.name]).__module__} "
                                     f"and {type(item).__module__}")
        found[item.name] = item
    return found


class PluginHost:
    """What the rest of the core asks of plugins, with the checks done once."""

    def __init__(self, settings: Settings, extra_plugins: Sequence[object] = ()) -> None:
        self.settings = settings
        self.pm = build_plugin_manager(settings, extra_plugins)
        self.hook = self.pm.hook

    # --- checks made at start-up -----------------------------------------------------------------------------

    def validate(self) -> None:
        """Everything that must be right before serving; raises ``ConfigurationError`` naming the culprit."""
        self.plugin_settings  # noqa: B018 - validates settings.plugins sections
        self.storage_backend_classes  # noqa: B018
        self.processors  # noqa: B018
        self.event_sinks  # noqa: B018
        self.jobs  # noqa: B018
        self.transcription_engines  # noqa: B018
        self.analyzers  # noqa: B018
        self.media_probers  # noqa: B018
        self.chunk_joiners  # noqa: B018
        self.check_profile_steps()
        tus_settings(self.settings)  # [plugins.tus] bounds and default_profile (auto, required or a profile)

    def check_profile_steps(self) -> None:
        """A profile step no installed plugin provides fails start-up, naming the extra to install, unless the
        profile lists it in ``optional_steps`` (then it is skipped; the defaults mark ``transcribe`` so)."""
        skipped = []
        for name, profile in self.settings.profiles.items():
            for step in profile.steps:
                if step in self.processors:
                    continue
                if step not in profile.optional_steps:
                    raise ConfigurationError(missing_step_message(name, step, sorted(self.processors)))
                skipped.append(f"{name}:{step}")
        if skipped:
            log.info("optional profile steps without an installed plugin (skipped): %s", sorted(skipped))

    @cached_property
    def plugin_settings(self) -> dict[str, Any]:
        sections: dict[str, Any] = {}
        for section, struct_type in _flatten(self.hook.register_settings()):
            if section in sections:
                raise ConfigurationError(f"Two plugins claim the settings section {section!r}")
            raw = self.settings.plugins.get(section, {})
            try:
                sections[section] = msgspec.convert(raw, struct_type, strict=False)
            except msgspec.ValidationError as exc:
                raise ConfigurationError(f"Bad plugin settings in plugins.{section}: {exc}") from exc
        return sections

    @cached_property
    def storage_backend_classes(self) -> dict[str, type[StorageBackend]]:
        classes: dict[str, type[StorageBackend]] = {}
        for cls in _flatten(self.hook.register_storage_backends()):
            if cls.name in classes:
                raise ConfigurationError(
                    f"Duplicate storage backend {cls.name!r}: {classes[cls.name].__module__} and {cls.__module__}"
                )
            classes[cls.name] = cls
        return classes

    def create_storage(self) -> StorageBackend:
        name = self.settings.storage.backend
        try:
            cls = self.storage_backend_classes[name]
        except KeyError:
            raise ConfigurationError(
                f"Unknown storage backend {name!r} (MEDIASVC_STORAGE__BACKEND). "
                f"Available: {sorted(self.storage_backend_classes)}"
            ) from None
        return cls.from_settings(self.settings)

    @cached_property
    def processors(self) -> dict[str, Processor]:
        found: dict[str, Processor] = {}
        for processor in _flatten(self.hook.register_processors(settings=self.settings)):
            if processor.name in found:
                raise ConfigurationError(
                    f"Duplicate processor name {processor.name!r}: {type(found[processor.name]).__module__} "
                    f"and {type(processor).__module__}"
                )
            found[processor.name] = processor
        return found

    @cached_property
    def event_sinks(self) -> dict[str, EventSink]:
        found: dict[str, EventSink] = {}
        for sink in _flatten(self.hook.register_event_sinks(settings=self.settings)):
            if sink.name in found:
                raise ConfigurationError(f"Duplicate event sink name {sink.name!r}")
            found[sink.name] = sink
        return found

    @cached_property
    def jobs(self) -> dict[str, Callable[..., Any]]:
        found: dict[str, Callable[..., Any]] = {}
        for name, fn in _flatten(self.hook.register_jobs()):
            if "." not in name:
                raise ConfigurationError(f"Job name {name!r} must be namespaced as 'plugin.task'")
            if name in found:
                raise ConfigurationError(f"Duplicate job name {name!r}")
            found[name] = fn
        return found

    @cached_property
    def models(self) -> dict[str, ModelSpec]:
        return _unique("model", _flatten(self.hook.register_models(settings=self.settings)))

    @cached_property
    def transcription_engines(self) -> dict[str, TranscriptionEngine]:
        return _unique("transcription engine",
                       _flatten(self.hook.register_transcription_engines(settings=self.settings)))

    @cached_property
    def analyzers(self) -> dict[str, Analyzer]:
        return _unique("analyzer", _flatten(self.hook.register_analyzers(settings=self.settings)))

    @cached_property
    def media_probers(self) -> dict[str, MediaProber]:
        """Probers in hook-call order (a plugin registered later, or ``tryfirst``, comes first)."""
        return _unique("media prober", _flatten(self.hook.register_media_probers(settings=self.settings)))

    def media_prober(self, content_type: str) -> MediaProber | None:
        """The first prober that reads ``content_type``, or None when no installed plugin does."""
        return next((p for p in self.media_probers.values() if content_type in p.content_types), None)

    @cached_property
    def chunk_joiners(self) -> dict[str, ChunkJoiner]:
        return _unique("chunk joiner", _flatten(self.hook.register_chunk_joiners(settings=self.settings)))

    @property
    def chunk_joiner(self) -> ChunkJoiner | None:
        """The joiner the ``sessions.join`` job uses (the first in hook-call order), or None."""
        return next(iter(self.chunk_joiners.values()), None)

    @cached_property
    def event_types(self) -> list[str]:
        """The core's event types, then those plugins declare (sorted, each once): the dashboard's event filter."""
        from mediasvc.events import EVENT_TYPES

        declared = {t for t in _flatten(self.hook.register_event_types()) if t not in EVENT_TYPES}
        return [*EVENT_TYPES, *sorted(declared)]

    @cached_property
    def cron_jobs(self) -> list[CronJob]:
        return _flatten(self.hook.register_cron_jobs())

    def routes(self) -> list[Any]:
        return _flatten(self.hook.register_routes(settings=self.settings))

    def piccolo_apps(self) -> list[str]:
        return _flatten(self.hook.piccolo_apps())

    # --- what is loaded --------------------------------------------------------------------------------------

    def plugin_infos(self) -> list[PluginInfo]:
        dists = {id(plugin): dist for plugin, dist in self.pm.list_plugin_distinfo()}
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist = dists.get(id(plugin))
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            infos.append(
                PluginInfo(
                    name=name,
                    version=dist.version if dist else _core_version(),
                    hooks=hooks,
                    source=dist.project_name if dist else "core",
                )
            )
        for name in self.settings.blocked_plugins:
            infos.append(PluginInfo(name=name, version="", hooks=[], source="blocked", blocked=True))
        return sorted(infos, key=lambda info: (info.source != "core", info.name))


def _core_version() -> str:
    from mediasvc import __version__

    return __version__
