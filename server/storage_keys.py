"""Storage keys are built here and only here, never from client file names (see ARCHITECTURE.md)."""

from __future__ import annotations

import re
from uuid import UUID

_SAFE_EXTENSION = re.compile(r"^[a-z0-9]{1,10}$")


def _extension(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    return ext if _SAFE_EXTENSION.match(ext) else "bin"


def asset_prefix(tenant_slug: str, kind: str, asset_id: UUID) -> str:
    return f"{tenant_slug}/{kind}/{asset_id}/"


def original_key(tenant_slug: str, kind: str, asset_id: UUID, extension: str) -> str:
    return f"{asset_prefix(tenant_slug, kind, asset_id)}original.{_extension(extension)}"


def rendition_key(tenant_slug: str, kind: str, asset_id: UUID, relative: str) -> str:
    """``relative`` is chosen by a processor (``hls/720p/seg_001.ts``), never by a client."""
    return f"{asset_prefix(tenant_slug, kind, asset_id)}{relative.lstrip('/')}"


def chunk_key(tenant_slug: str, session_id: UUID, sequence_index: int, extension: str) -> str:
    return f"{tenant_slug}/sessions/{session_id}/chunk_{sequence_index:04d}.{_extension(extension)}"
