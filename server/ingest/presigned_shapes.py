"""The payloads of presigned direct uploads (``POST /api/v1/uploads`` and friends), and the one view of any upload
(tus or presigned) that ``GET /api/v1/uploads/{id}`` returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from msgspec import Meta

from mediasvc.text_rules import CheckedText

DEFAULT_EXPIRES_SECONDS = 900
MAX_EXPIRES_SECONDS = 3600


class UploadCreate(CheckedText, forbid_unknown_fields=True):
    file_name: Annotated[str, Meta(min_length=1, max_length=1024)]
    profile: str
    size_bytes: int
    content_type: Annotated[str, Meta(max_length=200)] = "application/octet-stream"
    owner: Annotated[str, Meta(max_length=200)] = ""
    metadata: dict[str, Any] = {}
    expires_in: Annotated[int, Meta(ge=1, le=MAX_EXPIRES_SECONDS)] = DEFAULT_EXPIRES_SECONDS


class PartUrl(msgspec.Struct):
    part_number: int
    url: str
    offset: int  # first byte of the file this part carries
    length: int


class UploadTicket(msgspec.Struct):
    """Where and how to send the bytes. ``mode`` single: PUT the whole file to ``url`` with ``headers``.
    ``mode`` multipart: PUT each ``parts[i]`` byte range to its URL, then POST ``complete_url`` (or just confirm)."""

    upload_id: UUID
    asset_id: UUID
    mode: str
    method: str
    url: str | None
    headers: dict[str, str]
    expires_at: datetime
    confirm_url: str
    part_size: int | None = None
    parts: list[PartUrl] | None = None
    complete_url: str | None = None


class UploadView(msgspec.Struct):
    """Any upload of the caller's tenant (tus or presigned). ``asset_id`` is set once the asset exists."""

    id: UUID
    method: str
    status: str
    profile: str
    original_name: str
    content_type: str
    offset: int
    length: int | None
    asset_id: UUID | None
    expires_at: datetime | None
    created_at: datetime


class UploadConfirmed(msgspec.Struct):
    upload_id: UUID
    asset_id: UUID
    status: str
    size_bytes: int
    sha256: str
    content_type: str


class LocalPutReceived(msgspec.Struct):
    upload_id: UUID
    size_bytes: int
