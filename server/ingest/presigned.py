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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, NoReturn
from uuid import UUID, uuid4

import msgspec
from litestar import Request
from litestar.exceptions import InternalServerException
from msgspec import Meta

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
from mediasvc.ingest.assets import create_uploaded_asset, reserve_key
from mediasvc.ingest.presigned_s3 import Part, S3Multipart, plan_parts
from mediasvc.ingest.validation import (
    SNIFF_BYTES,
    check_content,
    check_declared,
    extension_of,
    get_profile,
    sanitize_filename,
)
from mediasvc.profiles import Profile
from mediasvc.services import Services
from mediasvc.signing import sign_path, verify_path
from mediasvc.tables import Asset, Upload

log = logging.getLogger("mediasvc.uploads")

MiB = 1024 * 1024
DEFAULT_EXPIRES_SECONDS = 900
MAX_EXPIRES_SECONDS = 3600
MULTIPART_THRESHOLD_BYTES = 100 * MiB  # S3 only: above this, presigned multipart instead of one PUT
MULTIPART_PART_BYTES = 16 * MiB  # preferred part size (grown for huge files to stay within 10 000 parts)
SINGLE_PUT_MAX_BYTES = 5 * 1024 * MiB  # S3's limit for one PUT (the cap when multipart is unavailable)
CONFIRM_GRACE_SECONDS = 900  # confirm is accepted this long after the URL expired; then the upload expires
STALE_CONFIRM_SECONDS = 3600  # a 'confirming' claim older than this was left by a crash and may be retaken
EXPIRE_BATCH = 500
LOCAL_PUT_PREFIX = "/media/uploads/"
LOCAL_BACKENDS = frozenset({"local", "memory"})  # backends whose PUT goes through our own signed endpoint
EXPIRE_JOB = "uploads.expire"

_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_MAJOR_TYPES = {"video": {"video"}, "audio": {"audio", "video"}, "image": {"image"}}
_ACTIVE_TYPES = {"image/svg+xml"}  # scriptable when served from the bucket's origin
_PUT_RECEIVING = json.dumps({"put": "receiving"})
_PUT_DONE = json.dumps({"put": "done"})
_SWEPT = json.dumps({"swept": True})


# --- API shapes -------------------------------------------------------------------------------------------------


class UploadCreate(msgspec.Struct, forbid_unknown_fields=True):
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


class LengthRequired(MediaServiceError):
    status_code, code = 411, "length_required"


# --- helpers ----------------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


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


def _loads(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return json.loads(value)
    return dict(value or {})


def to_view(row: dict[str, Any]) -> UploadView:
    return UploadView(
        id=row["id"], method=row["method"], status=row["status"], profile=row["profile"],
        original_name=row["original_name"], content_type=row["content_type"], offset=row["offset"],
        length=row["length"], asset_id=row["asset"], expires_at=row["expires_at"], created_at=row["created_at"],
    )


async def get_upload_row(upload_id: UUID, tenant_id: UUID) -> dict[str, Any]:
    """The upload if it belongs to the tenant; another tenant's upload is a 404, like a missing one."""
    row = await Upload.select().where(Upload.id == upload_id, Upload.tenant == tenant_id).first()
    if row is None:
        raise NotFound(f"Upload {upload_id} not found", details={"upload_id": str(upload_id)})
    row["metadata"] = _loads(row["metadata"])
    return row


async def _presigned_row(upload_id: UUID, tenant_id: UUID) -> dict[str, Any]:
    row = await get_upload_row(upload_id, tenant_id)
    if row["method"] != "presigned":
        raise Conflict(f"Upload {upload_id} is a {row['method']} upload, not a presigned one",
                       details={"upload_id": str(upload_id), "method": row["method"]})
    return row


async def _update(sql: str, *args: Any) -> list[dict[str, Any]]:
    return await Upload.raw(sql, *args)


async def _set_status(upload_id: UUID, status: str, *, extra: dict[str, Any] | None = None,
                      when: tuple[str, ...] | None = None) -> bool:
    """Move to ``status`` (only from a status in ``when``, if given); merge ``extra`` into metadata."""
    condition = ""
    args: list[Any] = [status, json.dumps(extra or {}), upload_id]
    if when:
        condition = " AND status = ANY({})"
        args.append(list(when))
    rows = await _update(
        "UPDATE uploads SET status = {}, metadata = metadata || {}::jsonb, updated_at = now() "
        "WHERE id = {}" + condition + " RETURNING id", *args)
    return bool(rows)


async def _remove_objects(services_storage: Any, row: dict[str, Any]) -> None:
    """Delete the object and abort an unfinished multipart upload; errors are logged, never raised."""
    meta = row["metadata"]
    multipart = meta.get("multipart")
    if multipart and not multipart.get("completed"):
        s3 = S3Multipart.for_storage(services_storage)
        if s3 is not None:
            try:
                await s3.abort(row["storage_key"], multipart["upload_id"])
            except Exception:
                log.warning("could not abort multipart upload of %s", row["id"], exc_info=True)
    try:
        await services_storage.delete(row["storage_key"])
    except Exception:
        log.warning("could not delete the object of upload %s", row["id"], exc_info=True)


# --- initiate ---------------------------------------------------------------------------------------------------


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
    expires_at = _now() + timedelta(seconds=data.expires_in)
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


# --- the local backend's signed PUT -----------------------------------------------------------------------------


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

    claimed = await _update(
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
        await _update("UPDATE uploads SET metadata = metadata - 'put', updated_at = now() "
                      "WHERE id = {} AND metadata->>'put' = 'receiving'", upload_id)

    try:
        await storage.put(key, body(), content_type=content_type)
        if received != size:
            raise ValidationFailed(f"The body ended after {received} of {size} bytes",
                                   details={"received": received, "size": size})
    except BaseException:
        await asyncio.shield(release())
        raise
    done = await _update(
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
    put = _loads(row["metadata"]).get("put")
    if row["status"] != "uploading":
        raise Conflict(f"Upload {upload_id} is {row['status']}", details={"status": row["status"]})
    if put == "done":
        raise Conflict("This upload URL has already been used", details={"upload_id": str(upload_id)})
    if put == "receiving":
        raise Conflict("Another PUT to this upload is in progress", details={"upload_id": str(upload_id)})
    if row["expires_at"] is not None and row["expires_at"] <= _now():
        raise Forbidden("Invalid or expired upload signature", details={"upload_id": str(upload_id)})
    raise Forbidden("The upload URL does not match this upload", details={"upload_id": str(upload_id)})


# --- multipart completion ---------------------------------------------------------------------------------------


async def complete_multipart(services: Services, tenant_id: UUID, upload_id: UUID) -> UploadView:
    row = await _presigned_row(upload_id, tenant_id)
    if row["status"] not in ("uploading", "confirming", "complete"):
        raise Conflict(f"Upload {upload_id} is {row['status']}", details={"status": row["status"]})
    if row["status"] == "uploading":
        await _complete_multipart_row(services, row)
    return to_view(await get_upload_row(upload_id, tenant_id))


async def _complete_multipart_row(services: Services, row: dict[str, Any]) -> None:
    """Check every part is there with its planned size, then complete. Idempotent."""
    multipart = row["metadata"].get("multipart")
    if not multipart:
        raise Conflict("This upload is a single PUT, not a multipart upload")
    if multipart.get("completed"):
        return
    s3 = S3Multipart.for_storage(services.storage)
    if s3 is None:
        raise Conflict("The storage backend no longer supports this multipart upload")
    key, size = row["storage_key"], row["length"]
    parts = await s3.list_parts(key, multipart["upload_id"])
    if parts is None:  # completed by a concurrent call (or aborted): the object tells which
        info = await services.storage.head(key)
        if info is None:
            raise Conflict("The multipart upload no longer exists", details={"upload_id": str(row["id"])})
    else:
        _check_parts(parts, multipart["part_size"], multipart["parts"], size)
        await s3.complete(key, multipart["upload_id"], parts)
    multipart = {**multipart, "completed": True}
    await _update("UPDATE uploads SET metadata = metadata || {}::jsonb, updated_at = now() WHERE id = {}",
                  json.dumps({"multipart": multipart}), row["id"])
    row["metadata"]["multipart"] = multipart


def _check_parts(parts: list[Part], part_size: int, count: int, size: int) -> None:
    by_number = {p.part_number: p for p in parts}
    missing = [n for n in range(1, count + 1) if n not in by_number]
    extra = sorted(n for n in by_number if not 1 <= n <= count)
    wrong = [n for n in range(1, count + 1) if n in by_number
             and by_number[n].size != min(part_size, size - (n - 1) * part_size)]
    if missing or extra or wrong:
        raise Conflict("The multipart upload is not complete: some parts are missing or have the wrong size",
                       details={"missing": missing[:100], "unexpected": extra[:100], "wrong_size": wrong[:100]})


# --- confirm ----------------------------------------------------------------------------------------------------


async def confirm(services: Services, tenant_id: UUID, upload_id: UUID) -> UploadConfirmed:
    row = await _presigned_row(upload_id, tenant_id)
    if row["status"] == "complete":
        return await _confirmed(row)
    _check_confirmable(row)
    claimed = await _update(
        "UPDATE uploads SET status = 'confirming', updated_at = now() WHERE id = {} AND "
        "(status = 'uploading' OR (status = 'confirming' AND updated_at < now() - {} * interval '1 second')) "
        "RETURNING id", upload_id, STALE_CONFIRM_SECONDS)
    if not claimed:
        row = await _presigned_row(upload_id, tenant_id)
        if row["status"] == "complete":
            return await _confirmed(row)
        raise Conflict(f"Upload {upload_id} is {row['status']}", details={"status": row["status"]})
    try:
        return await _confirm_claimed(services, row)
    except _Rejected as rejected:
        await _remove_objects(services.storage, row)
        await _set_status(upload_id, "failed", extra={"error": {"code": rejected.error.code,
                                                                "message": rejected.error.message}})
        raise rejected.error from None
    except BaseException:  # nothing decided: let the client confirm again
        await asyncio.shield(_set_status(upload_id, "uploading", when=("confirming",)))
        raise


def _check_confirmable(row: dict[str, Any]) -> None:
    status = row["status"]
    if status == "confirming":
        raise Conflict("This upload is being confirmed", details={"status": status})
    if status != "uploading":
        raise Conflict(f"Upload {row['id']} is {status}", details={"status": status})
    if row["expires_at"] is not None and row["expires_at"] + timedelta(seconds=CONFIRM_GRACE_SECONDS) < _now():
        raise Conflict(f"Upload {row['id']} has expired", details={"status": "expired",
                                                                  "expires_at": row["expires_at"].isoformat()})


class _Rejected(Exception):
    """The bytes are wrong for good: the object is removed and the upload fails."""

    def __init__(self, error: MediaServiceError) -> None:
        super().__init__(error.message)
        self.error = error


async def _confirm_claimed(services: Services, row: dict[str, Any]) -> UploadConfirmed:
    storage, meta = services.storage, row["metadata"]
    upload_id, key, declared = row["id"], row["storage_key"], row["length"]
    asset_id = UUID(meta["asset_id"])
    existing = await Asset.select(Asset.id).where(Asset.id == asset_id).first()
    if existing is None:  # (it exists only when an earlier confirm died after creating it)
        profile_name = row["profile"]
        profile = services.settings.profiles.get(profile_name)
        if profile is None:
            raise _Rejected(ValidationFailed(f"Profile {profile_name!r} is no longer configured"))
        if meta.get("multipart"):
            await _complete_multipart_row(services, row)
        info = await storage.head(key)
        if info is None:
            raise Conflict("Nothing has been uploaded for this upload yet", details={"upload_id": str(upload_id)})
        if info.size != declared:
            raise _Rejected(ValidationFailed(
                f"The uploaded object has {info.size} bytes, not the {declared} declared",
                details={"declared": declared, "actual": info.size}))
        head = await storage.get_bytes(key, start=0, end=SNIFF_BYTES)
        try:
            sniffed = check_content(profile_name, profile, extension_of(row["original_name"]), head)
        except UnsupportedMediaType as exc:
            raise _Rejected(exc) from None
        sha256, size = await _digest(storage, key)
        if size != declared:  # replaced between the head and the read
            raise _Rejected(ValidationFailed(f"The uploaded object changed size ({size} bytes) while it was "
                                             "checked", details={"declared": declared, "actual": size}))
        await create_uploaded_asset(
            services, asset_id=asset_id, tenant_id=row["tenant"], profile_name=profile_name,
            original_name=row["original_name"], storage_key=key, size_bytes=size, sha256=sha256,
            content_type=sniffed.mime, method="presigned", owner=meta.get("owner") or "",
            metadata=meta.get("metadata") or {},
        )
    await _update("UPDATE uploads SET status = 'complete', asset = {}, \"offset\" = length, updated_at = now() "
                  "WHERE id = {}", asset_id, upload_id)
    row = await Upload.select().where(Upload.id == upload_id).first()
    return await _confirmed(row)


async def _confirmed(row: dict[str, Any]) -> UploadConfirmed:
    asset = await Asset.select(Asset.id, Asset.size_bytes, Asset.sha256, Asset.content_type).where(
        Asset.id == row["asset"]).first()
    if asset is None:
        raise Conflict("The asset of this upload no longer exists", details={"upload_id": str(row["id"])})
    return UploadConfirmed(upload_id=row["id"], asset_id=asset["id"], status="complete",
                           size_bytes=asset["size_bytes"], sha256=asset["sha256"],
                           content_type=asset["content_type"])


async def _digest(storage: Any, key: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    async for chunk in storage.get_stream(key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


# --- abort and expiry -------------------------------------------------------------------------------------------


async def abort(services: Services, tenant_id: UUID, upload_id: UUID) -> UploadView:
    """Remove what was written. Aborting an upload that already ended (aborted, expired, failed) changes nothing;
    a confirmed or confirming one is a 409."""
    row = await _presigned_row(upload_id, tenant_id)
    if row["status"] in ("complete", "confirming"):
        raise Conflict(f"Upload {upload_id} is {row['status']}: delete the asset instead",
                       details={"status": row["status"]})
    if await _set_status(upload_id, "aborted", when=("uploading",)):
        await _remove_objects(services.storage, row)
    elif (current := await get_upload_row(upload_id, tenant_id))["status"] in ("complete", "confirming"):
        raise Conflict(f"Upload {upload_id} is {current['status']}", details={"status": current["status"]})
    return to_view(await get_upload_row(upload_id, tenant_id))


async def expire_presigned_uploads(ctx: dict[str, Any]) -> dict[str, int]:
    """The ``uploads.expire`` cron job: uploads not confirmed ``CONFIRM_GRACE_SECONDS`` after their URL expired
    become ``expired`` and their objects are removed. Aborted and failed uploads get their objects removed once
    more after the URL expired (a client may have PUT again with the still-valid URL). Safe to re-run."""
    storage = ctx["storage"]
    expired = swept = 0
    while True:
        rows = await _update(
            "UPDATE uploads SET status = 'expired', updated_at = now(), "
            "metadata = metadata || {}::jsonb "
            "WHERE id IN (SELECT u.id FROM uploads u WHERE u.method = 'presigned' "
            "  AND u.expires_at < now() - {} * interval '1 second' AND (u.status = 'uploading' "
            "  OR (u.status = 'confirming' AND u.updated_at < now() - {} * interval '1 second' "
            "      AND NOT EXISTS (SELECT 1 FROM assets a WHERE a.id::text = u.metadata->>'asset_id'))) "
            "  LIMIT {} FOR UPDATE SKIP LOCKED) "
            "RETURNING id, storage_key, metadata",
            _SWEPT, CONFIRM_GRACE_SECONDS, STALE_CONFIRM_SECONDS, EXPIRE_BATCH)
        for row in rows:
            row["metadata"] = _loads(row["metadata"])
            await _remove_objects(storage, row)
        expired += len(rows)
        if len(rows) < EXPIRE_BATCH:
            break
    while True:
        rows = await _update(
            "UPDATE uploads SET updated_at = now(), metadata = metadata || {}::jsonb "
            "WHERE id IN (SELECT u.id FROM uploads u WHERE u.method = 'presigned' "
            "  AND u.status IN ('aborted', 'failed') AND u.expires_at < now() "
            "  AND NOT (u.metadata ? 'swept') LIMIT {} FOR UPDATE SKIP LOCKED) "
            "RETURNING id, storage_key, metadata", _SWEPT, EXPIRE_BATCH)
        for row in rows:
            row["metadata"] = _loads(row["metadata"])
            await _remove_objects(storage, row)
        swept += len(rows)
        if len(rows) < EXPIRE_BATCH:
            break
    if expired or swept:
        log.info("presigned uploads: %d expired, %d swept", expired, swept)
    return {"expired": expired, "swept": swept}
