"""Writing a tus request body under the upload's lock: the offset and length rules, the append, the commit, and
completion at the last byte; plus the small request and response helpers every tus route uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from litestar import Request

from mediasvc.auth import Principal
from mediasvc.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from mediasvc.ingest.tus_errors import Locked
from mediasvc.ingest.tus_headers import ASSET_ID_HEADER, Checksum, http_date, parse_non_negative
from mediasvc.ingest.tus_lock import upload_lock
from mediasvc.ingest.tus_store import Appended, store_for
from mediasvc.ingest.tus_uploads import commit_offset, complete, confirm_head, load_row, size_limit
from mediasvc.services import Services


def parse_upload_id(raw: str) -> UUID:
    """The upload id in a tus URL; anything that is not a UUID is a 404, like a missing upload."""
    try:
        return UUID(raw)
    except ValueError:  # no upload has such an id
        raise NotFound(f"Upload {raw[:60]!r} not found", details={"upload_id": raw[:60]}) from None


def has_body(request: Request[Any, Any, Any]) -> bool:
    length = request.headers.get("content-length")
    if length is not None and length.strip():
        return length.strip() != "0"
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def progress_headers(row: dict[str, Any]) -> dict[str, str]:
    headers = {"Upload-Offset": str(row["offset"]), "Cache-Control": "no-store"}
    if row["status"] == "uploading" and row["expires_at"] is not None:
        headers["Upload-Expires"] = http_date(row["expires_at"])
    if row.get("asset"):
        headers[ASSET_ID_HEADER] = str(row["asset"])
    return headers


@asynccontextmanager
async def locked_row(services: Services, upload_id: UUID, principal: Principal) -> AsyncIterator[dict[str, Any]]:
    """The caller's upload, read while holding its lock. When the lock is taken, the answer is 423 only for
    the caller's own upload: another tenant's (or a missing) one stays a 404, whatever it is doing."""
    try:
        async with upload_lock(services.settings.database_url, upload_id):
            yield await load_row(upload_id, principal.tenant_id)
    except Locked:
        await load_row(upload_id, principal.tenant_id)
        raise


async def write_at_offset(request: Request[Any, Any, Any], services: Services, row: dict[str, Any], *,
                          offset: int, checksum: Checksum | None, new_length: int | None) -> None:
    """Under the upload's lock: append the body at ``offset``, commit, complete at the last byte."""
    settings = services.settings
    set_length = None
    if new_length is not None:
        if row["length"] is not None and new_length != row["length"]:
            raise BadRequest("Upload-Length is already set and cannot change",
                             details={"upload_length": row["length"]})
        if row["length"] is None:
            limit = size_limit(settings, row)
            if new_length > limit:
                raise PayloadTooLarge(f"Upload-Length {new_length} is over the limit of {limit} bytes",
                                      details={"upload_length": new_length, "max_bytes": limit})
            if new_length < row["offset"]:
                raise BadRequest("Upload-Length is smaller than what was already uploaded",
                                 details={"upload_length": new_length, "upload_offset": row["offset"]})
            set_length = new_length
    if offset != row["offset"]:
        raise Conflict(f"Upload-Offset {offset} does not match the upload's offset {row['offset']}",
                       details={"upload_offset": offset, "expected": row["offset"]},
                       headers={"Upload-Offset": str(row["offset"])})
    total = set_length if set_length is not None else size_limit(settings, row)
    max_bytes = total - offset
    content_length = parse_non_negative("Content-Length", request.headers.get("content-length"))
    if content_length is not None and content_length > max_bytes:
        raise PayloadTooLarge(
            f"{content_length} bytes at offset {offset} go past the upload's {total} bytes",
            details={"content_length": content_length, "upload_offset": offset, "max_bytes": total},
        )
    store = store_for(services.storage, settings)
    appended = Appended(0, False, None)
    if content_length != 0 and row["status"] == "uploading":
        appended = await store.append(row, request.stream(), offset=offset, max_bytes=max_bytes,
                                      content_length=content_length, checksum=checksum)
    elif content_length != 0:  # complete already: any data is too much
        async for chunk in request.stream():
            if chunk:
                raise PayloadTooLarge("The upload is complete: no more data fits",
                                      details={"upload_offset": offset, "max_bytes": total})
    await commit_offset(settings, row, appended, length=set_length)
    await confirm_head(settings, store, row, offset)  # 415 as soon as the first bytes are not the profile's
    if row["status"] == "uploading" and row["length"] is not None and row["offset"] == row["length"]:
        await complete(services, store, row)
