"""The types plugins implement or receive: storage backends, processors, event sinks, dashboard panels."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable
from uuid import UUID

import msgspec

if TYPE_CHECKING:
    from server.settings import Settings


# --- storage -------------------------------------------------------------------------------------------------


class ObjectInfo(msgspec.Struct, frozen=True):
    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None


class StorageBackend(abc.ABC):
    """A place bytes live. Keys are built by the service (``{tenant}/{kind}/{asset_id}/original.mp4``)."""

    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Settings) -> StorageBackend:
        """Build the backend from ``settings.storage``; raise ``ConfigurationError`` naming the bad key."""

    @abc.abstractmethod
    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> ObjectInfo:
        """Store ``data`` under ``key`` (streamed when an async iterable), replacing what was there."""

    @abc.abstractmethod
    def get_stream(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield the bytes of ``key`` from ``start`` up to ``end`` (exclusive). Raises ``NotFound``."""

    @abc.abstractmethod
    async def head(self, key: str) -> ObjectInfo | None:
        """Size and etag of ``key``, or None when it does not exist."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is already gone."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``."""

    @abc.abstractmethod
    async def presign(
        self, key: str, *, method: str = "GET", expires_in: int = 900, content_type: str | None = None
    ) -> str:
        """A URL a client can use without our credentials, valid for ``expires_in`` seconds."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise when the backend cannot be reached (used by /health)."""

    async def get_bytes(self, key: str, *, start: int = 0, end: int | None = None) -> bytes:
        return b"".join([chunk async for chunk in self.get_stream(key, start=start, end=end)])

    def local_path(self, key: str) -> Path | None:
        """The file behind ``key`` when the backend is a local directory (for sendfile and FFmpeg), else None."""
        return None

    async def close(self) -> None:
        """Release connections; called at shutdown."""


# --- processing ----------------------------------------------------------------------------------------------


class RenditionOut(msgspec.Struct):
    """A rendition a processor wrote: where it is and what it is."""

    kind: str  # mp4, hls, thumbnail, poster, audio, image, captions...
    name: str  # unique per asset and kind: "720p", "en", "medium"
    storage_key: str
    content_type: str
    size_bytes: int = 0
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    bitrate: int | None = None
    metadata: dict[str, Any] = {}


class ProcessorContext(Protocol):
    """What a processor gets: the asset, its storage, settings, and a way to report progress."""

    asset_id: UUID
    asset: Any
    settings: Settings
    storage: StorageBackend

    async def progress(self, percent: float, message: str = "") -> None: ...


@runtime_checkable
class Processor(Protocol):
    name: str
    kinds: frozenset[str]  # media kinds it accepts: video, audio, image, document
    timeout_seconds: int

    async def run(self, ctx: ProcessorContext) -> list[RenditionOut]: ...


# --- events --------------------------------------------------------------------------------------------------


class Event(msgspec.Struct, frozen=True):
    """A fact the service publishes. ``id`` is the idempotency key receivers dedupe by."""

    id: UUID
    type: str
    tenant_id: UUID | None
    created_at: datetime
    data: dict[str, Any]


class SinkError(Exception):
    """A delivery that failed; ``retryable=False`` marks one that never will succeed."""

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@runtime_checkable
class EventSink(Protocol):
    name: str  # unique: "log", "webhook:billing"

    def accepts(self, event_type: str) -> bool: ...

    async def deliver(self, event: Event) -> int | None:
        """Deliver one event; return a status code if there is one. Raise ``SinkError`` on failure."""
        ...


# --- dashboard -----------------------------------------------------------------------------------------------


class Panel(msgspec.Struct):
    title: str
    template: str  # a template name the plugin's template folder provides
    context: dict[str, Any] = {}
    order: int = 100


class MenuLink(msgspec.Struct):
    label: str
    href: str
    order: int = 100
