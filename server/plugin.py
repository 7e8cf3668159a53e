"""mediasvc's public plugin API: the one module a plugin imports (its tests add ``mediasvc.testing``).

Everything a plugin may rely on is named here, and only here; every other ``mediasvc.*`` module is private and may
change in any release. ``API_VERSION`` follows semantic versioning: a minor bump adds names or optional fields, a
major bump removes or changes one (and the old form keeps working, with a DeprecationWarning, for one major).
docs/plugins.md documents every name and walks through writing, installing and testing a plugin.

Names load on first use (PEP 562), so importing this module costs nothing until a plugin touches a service.

- **Hooks**: ``hookimpl`` marks an implementation; the specs are in ``mediasvc.hookspecs`` (README "Plugin hooks").
- **Contracts** a hook returns or receives: ``Processor`` (returns a ``ProcessorResult``), ``ProcessorContext``,
  ``RenditionOut``, ``EventOut``, ``StorageBackend``, ``ObjectInfo``, ``EventSink``, ``Event``, ``SinkError``,
  ``ModelSpec``, ``TranscriptionEngine``, ``Transcription``, ``TranscriptSegment``, ``Analyzer``,
  ``AnalysisResult``, ``Finding``, ``Box``, ``Panel``, ``MenuLink``; media tools: ``MediaProber``, ``MediaInfo``,
  ``MediaUnreadable``, ``ChunkJoiner``, ``JoinPart``, ``JoinResult``, ``JoinError``, and ``sniff`` / ``Sniffed`` / ``SNIFF_BYTES``
  (a file's type from its first bytes, never its name).
- **Errors** a plugin raises (mapped to the one JSON error format): ``MediaServiceError`` and its subclasses,
  ``PermanentProcessingError`` (fail a step without retrying), ``ConfigurationError`` (fail start-up, naming the
  culprit), ``ModelMissing``.
- **Host services**: ``Settings`` (a plugin reads its section with ``plugin_section``), ``PluginHost`` (what
  ``ctx.host`` is: other plugins' engines, analyzers, processors), ``emit_event`` / ``kick_events`` (the outbox),
  ``schedule_steps`` and ``enqueue`` (background work), ``serve_url`` / ``sign_path`` (signed URLs),
  ``local_file`` (a stored object as a local file), ``scratch_dir`` (a step's folder for temporary files, under the
  data dir, removed when the step ends), ``bind_tables`` (a plugin's own Piccolo tables on the core's
  database), the core tables a plugin may read (``Asset``, ``Rendition``, ``ProcessingJob``, ``RecordingSession``,
  ``Chunk``, ``Tenant``, ``Transcript``), and for routes and dashboard panels: ``api_key_guard``, ``Principal``,
  ``PrincipalDep``, ``Services``, ``ServicesDep``, ``get_asset_row``, ``get_session_row``, ``encode_cursor``,
  ``decode_cursor``, ``render``, ``operator_guard``, ``operator_of``, ``LoginRequired``, ``login_redirect``.
- **Queue**: ``create_queue`` (a queue from settings, for code that has none in hand, e.g. an event sink that
  enqueues jobs: connect it, pass it to ``enqueue``, disconnect it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

API_VERSION = "1.0"

_EXPORTS: dict[str, str] = {
    # hooks
    "hookimpl": "mediasvc.hookspecs",
    # contracts
    **dict.fromkeys((
        "AnalysisResult", "Analyzer", "Box", "Event", "EventOut", "EventSink", "Finding", "MenuLink", "ModelSpec",
        "ObjectInfo", "Panel", "Processor", "ProcessorContext", "ProcessorResult", "RenditionOut", "SinkError",
        "StorageBackend", "Transcription", "TranscriptionEngine", "TranscriptSegment",
    ), "mediasvc.contracts"),
    # errors
    **dict.fromkeys((
        "BadRequest", "ConfigurationError", "Conflict", "Forbidden", "Gone", "MediaServiceError", "ModelMissing",
        "NotFound", "PayloadTooLarge", "PermanentProcessingError", "ServiceUnavailable", "Unauthorized",
        "UnsupportedMediaType", "ValidationFailed",
    ), "mediasvc.errors"),
    # host services
    "Settings": "mediasvc.settings",
    "StorageSettings": "mediasvc.settings",
    "plugin_section": "mediasvc.plugin_services",
    "emit_event": "mediasvc.plugin_services",
    "kick_events": "mediasvc.plugin_services",
    "schedule_steps": "mediasvc.plugin_services",
    "PluginHost": "mediasvc.plugins",
    "enqueue": "mediasvc.plugin_services",
    "serve_url": "mediasvc.media_urls",
    "sign_path": "mediasvc.signing",
    "local_file": "mediasvc.storage_files",
    "bind_tables": "mediasvc.database",
    **dict.fromkeys(("Asset", "Chunk", "ProcessingJob", "RecordingSession", "Rendition", "Tenant", "Transcript"),
                    "mediasvc.tables"),
    # routes
    "api_key_guard": "mediasvc.auth",
    "Principal": "mediasvc.auth",
    "PrincipalDep": "mediasvc.auth",
    "Services": "mediasvc.services",
    "ServicesDep": "mediasvc.services",
    "get_asset_row": "mediasvc.api.assets",
    "get_session_row": "mediasvc.api.sessions_rows",
    "encode_cursor": "mediasvc.pagination",
    "decode_cursor": "mediasvc.pagination",
    # dashboard
    "render": "mediasvc.dashboard.render",
    "operator_guard": "mediasvc.dashboard.auth",
    "LoginRequired": "mediasvc.dashboard.auth",
    "operator_of": "mediasvc.dashboard.views_assets",
    "login_redirect": "mediasvc.dashboard.views_auth",
    # queue
    "create_queue": "mediasvc.queue",
    # media tools
    **dict.fromkeys(("ChunkJoiner", "JoinError", "JoinPart", "JoinResult", "MediaInfo", "MediaProber",
                     "MediaUnreadable"), "mediasvc.contracts"),
    "sniff": "mediasvc.ingest.validation",
    "SNIFF_BYTES": "mediasvc.ingest.validation",
    "Sniffed": "mediasvc.ingest.validation",
    "ModelFile": "mediasvc.contracts",  # a pinned official file of a ModelSpec's download
    "scratch_dir": "mediasvc.scratch",  # a step's folder for temporary files, under the data dir
}

__all__ = ["API_VERSION", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"mediasvc.plugin has no public name {name!r} (API {API_VERSION})")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # the same names, for type checkers and editors
    from mediasvc.api.assets import get_asset_row
    from mediasvc.media_urls import serve_url
    from mediasvc.api.sessions_rows import get_session_row
    from mediasvc.auth import Principal, PrincipalDep, api_key_guard
    from mediasvc.contracts import (
        AnalysisResult, Analyzer, Box, Event, EventOut, EventSink, Finding, MenuLink, ModelSpec, ObjectInfo, Panel,
        Processor, ProcessorContext, ProcessorResult, RenditionOut, SinkError, StorageBackend, Transcription,
        TranscriptionEngine, TranscriptSegment,
    )
    from mediasvc.dashboard.auth import LoginRequired, operator_guard
    from mediasvc.dashboard.render import render
    from mediasvc.dashboard.views_assets import operator_of
    from mediasvc.dashboard.views_auth import login_redirect
    from mediasvc.database import bind_tables
    from mediasvc.errors import (
        BadRequest, ConfigurationError, Conflict, Forbidden, Gone, MediaServiceError, ModelMissing, NotFound,
        PayloadTooLarge, PermanentProcessingError, ServiceUnavailable, Unauthorized, UnsupportedMediaType,
        ValidationFailed,
    )
    from mediasvc.hookspecs import hookimpl
    from mediasvc.pagination import decode_cursor, encode_cursor
    from mediasvc.plugin_services import emit_event, enqueue, kick_events, plugin_section, schedule_steps
    from mediasvc.plugins import PluginHost
    from mediasvc.queue import create_queue
    from mediasvc.services import Services, ServicesDep
    from mediasvc.settings import Settings, StorageSettings
    from mediasvc.signing import sign_path
    from mediasvc.storage_files import local_file
    from mediasvc.tables import Asset, Chunk, ProcessingJob, RecordingSession, Rendition, Tenant, Transcript
    from mediasvc.contracts import (
        ChunkJoiner, JoinError, JoinPart, JoinResult, MediaInfo, MediaProber, MediaUnreadable,
    )
    from mediasvc.ingest.validation import SNIFF_BYTES, Sniffed, sniff
    from mediasvc.contracts import ModelFile
    from mediasvc.scratch import scratch_dir
