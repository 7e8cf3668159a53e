"""Presigned direct uploads: the client sends the bytes straight to storage, then confirms.

1. ``initiate`` validates the declared name, size and content type against the profile (nothing is stored when
   that fails), reserves the asset id and final key, writes an ``uploads`` row (method ``presigned``) and returns
   where to PUT:
   - S3 / GCS / Azure: the store's own presigned PUT URL (``storage.presign``); on S3 above
     ``MULTIPART_THRESHOLD_BYTES`` (and with static credentials) a multipart upload with one presigned URL per
     part (see ``presigned_s3``), finished by ``complete_multipart`` (``confirm`` does it too if needed);
   - local / memory: our own ``PUT /media/uploads/{id}?size=&type=&exp=&sig=`` (``receive_local_put``), HMAC-signed,
     bound to the exact size and content type, single use, expiring.
2. ``confirm`` checks the object exists, has the declared size and a sniffed type the profile allows (the object is
   removed and the upload marked ``failed`` otherwise), hashes it once (streamed), then creates the asset
   (``media.uploaded``, processing scheduled). Confirming again returns the same asset (idempotent, 200).
3. ``abort`` removes what was written; ``expire_presigned_uploads`` (the ``uploads.expire`` cron job) removes the
   objects of uploads not confirmed within ``CONFIRM_GRACE_SECONDS`` after their URL expired.

Upload row ``metadata`` (service-owned): ``asset_id`` (reserved), ``owner``, ``metadata`` (the client's),
``backend``, ``put`` (local: ``receiving``/``done``), ``multipart`` ({upload_id, part_size, parts, completed}),
``error`` (why it failed), ``swept`` (objects removed once more after the URL expired).
Status: ``uploading`` → ``confirming`` (transient, while confirm runs) → ``complete``; or ``aborted``, ``expired``,
``failed``.

This module starts uploads (``initiate``) and is the flow's one entry point: the other steps live beside it —
``presigned_put`` (the local signed PUT), ``presigned_confirm`` (multipart completion, confirm),
``presigned_cleanup`` (abort, expiry), on ``presigned_rows`` (the ``uploads`` rows) and ``presigned_shapes``
(payloads) — and are re-exported here.
"""

from __future__ import annotations

import contextlib
import re
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from mediasvc.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from mediasvc.ingest.assets import reserve_key
from mediasvc.ingest.presigned_cleanup import EXPIRE_JOB, abort, expire_presigned_uploads
from mediasvc.ingest.presigned_confirm import complete_multipart, confirm
from mediasvc.ingest.presigned_put import LOCAL_BACKENDS, LOCAL_PUT_PREFIX, receive_local_put
from mediasvc.ingest.presigned_rows import CONFIRM_GRACE_SECONDS, get_upload_row, to_view, utcnow
from mediasvc.ingest.presigned_s3 import S3Multipart, plan_parts
from mediasvc.ingest.presigned_shapes import (
    LocalPutReceived,
    PartUrl,
    UploadConfirmed,
    UploadCreate,
    UploadTicket,
    UploadView,
)
from mediasvc.ingest.validation import check_declared, get_profile, sanitize_filename
from mediasvc.profiles import Profile
from mediasvc.services import Services
from mediasvc.signing import sign_path
from mediasvc.tables import Upload

__all__ = [  # the flow's entry points, for the API routes and the cron job
    "CONFIRM_GRACE_SECONDS", "EXPIRE_JOB", "LOCAL_PUT_PREFIX", "LocalPutReceived", "UploadConfirmed", "UploadCreate",
    "UploadTicket", "UploadView", "abort", "check_content_type", "complete_multipart", "confirm",
    "expire_presigned_uploads", "get_upload_row", "initiate", "receive_local_put", "to_view",
]

MiB = 1024 * 1024
MULTIPART_THRESHOLD_BYTES = 100 * MiB  # S3 only: above this, presigned multipart instead of one PUT
MULTIPART_PART_BYTES = 16 * MiB  # preferred part size (grown for huge files to stay within 10 000 parts)
SINGLE_PUT_MAX_BYTES = 5 * 1024 * MiB  # S3's limit for one PUT (the cap when multipart is unavailable)

_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_MAJOR_TYPES = {"video": {"video"}, "audio": {"audio", "video"}, "image": {"image"}}
_ACTIVE_TYPES = {"image/svg+xml"}  # scriptable when served from the bucket's origin


def check_content_type(content_type: str, profile_name: str, profile: Profile) -> str:
    """A plain ``type/subtype`` that fits the profile's kind (it becomes the object's Content-Type on S3)."""
    value = content_type.strip().lower()
    if not _MEDIA_TYPE.match(value):
        raise ValidationFailed("content_type must be a media type like video/mp4 (no parameters)",
                               details={"content_type": content_type})
    if value == "application/octet-stream":
        return value
    major = value.partition("/")[0]
    allowed = value == "application/pdf" if profile.kind == "document" else major in _MAJOR_TYPES[profile.kind]
    if not allowed or value in _ACTIVE_TYPES:
        raise UnsupportedMediaType(
            f"Content type {value} does not fit profile {profile_name!r} ({profile.kind})",
            details={"content_type": value, "profile": profile_name, "kind": profile.kind},
        )
    return value


async def initiate(services: Services, tenant_id: UUID, tenant_slug: str, data: UploadCreate) -> UploadTicket:
    settings, storage = services.settings, services.storage
    profile = get_profile(settings, data.profile)
    name = sanitize_filename(data.file_name)
    extension = check_declared(data.profile, profile, name, data.size_bytes)
    if data.size_bytes == 0:
        raise ValidationFailed("size_bytes must be at least 1", details={"size": 0})
    content_type = check_content_type(data.content_type, data.profile, profile)
    size = data.size_bytes
    local = storage.name in LOCAL_BACKENDS
    s3 = S3Multipart.for_storage(storage) if size > MULTIPART_THRESHOLD_BYTES else None
    if not local and s3 is None and size > SINGLE_PUT_MAX_BYTES:
        raise PayloadTooLarge(
            f"{size} bytes is over the {SINGLE_PUT_MAX_BYTES} bytes a single presigned PUT can carry "
            f"(multipart needs the s3 backend with static credentials)",
            details={"size": size, "max_bytes": SINGLE_PUT_MAX_BYTES},
        )
    asset_id, key = reserve_key(tenant_slug, profile, extension)
    upload_id = uuid4()
    expires_at = utcnow() + timedelta(seconds=data.expires_in)
    meta: dict[str, Any] = {"asset_id": str(asset_id), "owner": data.owner, "metadata": data.metadata,
                            "backend": storage.name}
    if s3 is not None:
        part_size, count = plan_parts(size, MULTIPART_PART_BYTES)
        meta["multipart"] = {"upload_id": await s3.create(key, content_type), "part_size": part_size,
                             "parts": count, "completed": False}
    try:
        await Upload.insert(Upload(
            id=upload_id, tenant=tenant_id, method="presigned", profile=data.profile, status="uploading",
            original_name=name, content_type=content_type, offset=0, length=size, storage_key=key,
            metadata=meta, expires_at=expires_at,
        ))
    except BaseException:
        if s3 is not None:
            with contextlib.suppress(Exception):
                await s3.abort(key, meta["multipart"]["upload_id"])
        raise
    api = f"/api/v1/uploads/{upload_id}"
    ticket = UploadTicket(upload_id=upload_id, asset_id=asset_id, mode="single", method="PUT", url=None,
                          headers={}, expires_at=expires_at, confirm_url=f"{api}/confirm")
    if local:
        signed = sign_path(settings.secret_key, f"{LOCAL_PUT_PREFIX}{upload_id}", method="PUT",
                           expires_in=data.expires_in, params={"size": str(size), "type": content_type})
        ticket.url = f"{settings.public_base_url}{signed}"
        ticket.headers = {"Content-Type": content_type, "Content-Length": str(size)}
    elif s3 is not None:
        multipart = meta["multipart"]
        urls = await s3.part_urls(key, multipart["upload_id"], multipart["parts"], expires_in=data.expires_in)
        part_size = multipart["part_size"]
        ticket.mode, ticket.part_size, ticket.complete_url = "multipart", part_size, f"{api}/complete-multipart"
        ticket.parts = [PartUrl(part_number=n, url=url, offset=(n - 1) * part_size,
                                length=min(part_size, size - (n - 1) * part_size))
                        for n, url in enumerate(urls, start=1)]
    else:
        ticket.url = await storage.presign(key, method="PUT", expires_in=data.expires_in, content_type=content_type)
        ticket.headers = {"Content-Type": content_type}
        if storage.name == "azure":
            ticket.headers["x-ms-blob-type"] = "BlockBlob"
    return ticket
