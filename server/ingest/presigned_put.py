"""The local backend's presigned PUT: ``PUT /media/uploads/{id}?size=&type=&exp=&sig=``.

S3, GCS and Azure take the bytes themselves (their own presigned URLs); the local and memory backends get this
HMAC-signed endpoint instead, bound to the exact size and content type, single use and expiring.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, NoReturn
from uuid import UUID

from litestar import Request
from litestar.exceptions import InternalServerException

from mediasvc.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MediaServiceError,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from mediasvc.ingest.presigned_rows import loads_metadata, update_uploads, utcnow
from mediasvc.ingest.presigned_shapes import LocalPutReceived
from mediasvc.services import Services
from mediasvc.signing import verify_path
from mediasvc.tables import Upload

LOCAL_PUT_PREFIX = "/media/uploads/"
LOCAL_BACKENDS = frozenset({"local", "memory"})  # backends whose PUT goes through this signed endpoint
_PUT_RECEIVING = json.dumps({"put": "receiving"})
_PUT_DONE = json.dumps({"put": "done"})


class LengthRequired(MediaServiceError):
    status_code, code = 411, "length_required"



async def receive_local_put(services: Services, upload_id: UUID, request: Request[Any, Any, Any]) -> LocalPutReceived:
    """Verify the signature and bindings before reading a byte, claim the upload (one PUT at a time, one success
    ever), stream the body into storage and stop at the first byte over the bound size (nothing kept)."""
    path = f"{LOCAL_PUT_PREFIX}{upload_id}"
    items = list(request.query_params.multi_items())
    query = dict(items)
    if len(query) != len(items) or not verify_path(services.settings.secret_key, path, query, method="PUT"):
        raise Forbidden("Invalid or expired upload signature", details={"upload_id": str(upload_id)})
    try:
        size, content_type = int(query["size"]), query["type"]
    except (KeyError, ValueError):
        raise Forbidden("The upload URL is missing its bound size and type") from None

    announced = request.headers.get("content-length")
    if announced is None:
        raise LengthRequired("Content-Length is required", details={"expected": size})
    try:
        length = int(announced)
    except ValueError:
        raise BadRequest("Content-Length is not a number") from None
    if length > size:
        raise PayloadTooLarge(f"Content-Length {length} is over the {size} bytes this URL allows",
                              details={"content_length": length, "size": size})
    if length != size:
        raise ValidationFailed(f"Content-Length must be exactly {size}", details={"content_length": length,
                                                                                   "size": size})
    sent_type = request.headers.get("content-type", "").strip().lower()
    if sent_type != content_type:
        raise UnsupportedMediaType(f"Content-Type must be {content_type}",
                                   details={"content_type": sent_type, "expected": content_type})

    claimed = await update_uploads(
        "UPDATE uploads SET metadata = metadata || {}::jsonb, updated_at = now() "
        "WHERE id = {} AND method = 'presigned' AND status = 'uploading' AND expires_at > now() "
        "AND length = {} AND content_type = {} AND coalesce(metadata->>'put', '') = '' "
        "RETURNING storage_key", _PUT_RECEIVING, upload_id, size, content_type)
    if not claimed:
        await _refuse_put(upload_id)
    key = claimed[0]["storage_key"]
    storage = services.storage
    received = 0

    async def body() -> Any:
        nonlocal received
        try:
            async for chunk in request.stream():
                if not chunk:
                    continue
                received += len(chunk)
                if received > size:
                    raise PayloadTooLarge(f"More than the {size} bytes this URL allows were sent",
                                          details={"size": size})
                yield chunk
        except InternalServerException as exc:  # Litestar's "client disconnected prematurely"
            raise BadRequest("The client disconnected before the whole body arrived") from exc

    async def release() -> None:
        await storage.delete(key)
        await update_uploads("UPDATE uploads SET metadata = metadata - 'put', updated_at = now() "
                             "WHERE id = {} AND metadata->>'put' = 'receiving'", upload_id)

    try:
        await storage.put(key, body(), content_type=content_type)
        if received != size:
            raise ValidationFailed(f"The body ended after {received} of {size} bytes",
                                   details={"received": received, "size": size})
    except BaseException:
        await asyncio.shield(release())
        raise
    done = await update_uploads(
        "UPDATE uploads SET metadata = metadata || {}::jsonb, \"offset\" = {}, "
        "updated_at = now() WHERE id = {} AND status = 'uploading' AND metadata->>'put' = 'receiving' "
        "RETURNING id", _PUT_DONE, size, upload_id)
    if not done:  # aborted or expired while the body was arriving
        await asyncio.shield(storage.delete(key))
        raise Conflict("The upload was aborted or expired while its body arrived",
                       details={"upload_id": str(upload_id)})
    return LocalPutReceived(upload_id=upload_id, size_bytes=size)


async def _refuse_put(upload_id: UUID) -> NoReturn:
    row = await Upload.select().where(Upload.id == upload_id).first()
    if row is None:
        raise NotFound(f"Upload {upload_id} not found")
    put = loads_metadata(row["metadata"]).get("put")
    if row["status"] != "uploading":
        raise Conflict(f"Upload {upload_id} is {row['status']}", details={"status": row["status"]})
    if put == "done":
        raise Conflict("This upload URL has already been used", details={"upload_id": str(upload_id)})
    if put == "receiving":
        raise Conflict("Another PUT to this upload is in progress", details={"upload_id": str(upload_id)})
    if row["expires_at"] is not None and row["expires_at"] <= utcnow():
        raise Forbidden("Invalid or expired upload signature", details={"upload_id": str(upload_id)})
    raise Forbidden("The upload URL does not match this upload", details={"upload_id": str(upload_id)})
