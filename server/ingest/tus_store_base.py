"""What every tus store shares: the ``TusStore`` interface, what an append reports (``Appended``), the segments of
an upload on an object store, and the working keys of an upload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec

from mediasvc.contracts import StorageBackend
from mediasvc.ingest.tus_headers import Checksum
from mediasvc.settings import Settings


class Segment(msgspec.Struct, array_like=True):
    """One stored run of an upload on an object store: bytes [offset, offset + size) live at ``key``."""

    offset: int
    size: int
    key: str


@dataclass
class Appended:
    received: int  # bytes of this request now durably stored (0 when nothing counts)
    cut: bool  # the body ended before its Content-Length: the client went away
    segments: list[Segment] | None = None  # object stores: the segment list to commit with the new offset
    sha_state: Any = field(default=None, repr=False)  # running sha256 of [0, new offset), when known


def tus_prefix(storage_key: str, upload_id: UUID) -> str:
    """Working keys of an upload: ``<tenant>/tus/<upload id>/`` (the tenant is any key's first segment)."""
    return f"{storage_key.split('/', 1)[0]}/tus/{upload_id}/"


def partial_key(tenant_slug: str, upload_id: UUID) -> str:
    """Where a partial upload (concatenation) keeps its bytes: it never becomes an asset by itself."""
    return f"{tenant_slug}/tus/{upload_id}/data"


def segments_of(tus_state: dict[str, Any]) -> list[Segment]:
    return [Segment(*item) for item in tus_state.get("segments", [])]


class TusStore:
    """Bytes of uploads on one storage backend. ``row`` arguments are ``uploads`` rows (dicts)."""

    def __init__(self, backend: StorageBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings

    async def append(self, row: dict[str, Any], stream: AsyncIterator[bytes], *, offset: int, max_bytes: int,
                     content_length: int | None, checksum: Checksum | None) -> Appended:
        raise NotImplementedError

    async def read_head(self, row: dict[str, Any], size: int) -> bytes:
        raise NotImplementedError

    async def finalize(self, row: dict[str, Any]) -> tuple[str, list[Segment] | None]:
        """Make the final key hold the whole upload; return its sha256 and the segment list to commit."""
        raise NotImplementedError

    async def concat(self, row: dict[str, Any], partials: list[dict[str, Any]]) -> Any:
        """Write the partial uploads, in order, to ``row``'s key (durably); return the sha256 hasher."""
        raise NotImplementedError

    async def cleanup(self, row: dict[str, Any]) -> None:
        """Remove working objects (segments) that the final key no longer needs."""

    async def discard(self, row: dict[str, Any]) -> None:
        """Remove every byte of the upload."""
        raise NotImplementedError
