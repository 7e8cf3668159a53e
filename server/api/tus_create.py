"""Creating tus uploads (``POST /api/v1/tus/``): the profile and size checked before any byte is stored, the row
and the reserved key, creation-with-upload, and concatenation (partial uploads joined into a final one)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from litestar import Request, Response

from mediasvc.api.tus_write import has_body, progress_headers, write_at_offset
from mediasvc.auth import Principal
from mediasvc.errors import BadRequest, MediaServiceError, PayloadTooLarge
from mediasvc.ingest.assets import reserve_key
from mediasvc.ingest.tus_headers import (
    Concat,
    parse_checksum,
    parse_concat,
    parse_metadata,
    parse_non_negative,
    require_offset_content_type,
    require_tus_resumable,
)
from mediasvc.ingest.tus_lock import upload_lock
from mediasvc.ingest.tus_profile import declared_type, resolve_profile
from mediasvc.ingest.tus_store import Appended, ObjectTusStore, Segment, partial_key, remember_sha_state, store_for
from mediasvc.ingest.tus_uploads import (
    commit_offset,
    complete,
    ensure_alive,
    expiry,
    is_partial,
    load_row,
    max_upload_size,
    utcnow,
)
from mediasvc.ingest.validation import check_declared, get_profile, sanitize_filename
from mediasvc.profiles import Profile
from mediasvc.services import Services
from mediasvc.settings import Settings
from mediasvc.tables import Upload


def _declared(settings: Settings, metadata: dict[str, str | None], size: int | None,
              state: dict[str, Any]) -> tuple[str, Profile, str]:
    """The profile (named, or the ``default_profile`` setting's) and the sanitized file name of an upload."""
    declared = resolve_profile(settings, metadata, size)
    state["profile_chosen_by"] = declared.chosen_by
    return declared.profile_name, declared.profile, declared.filename


async def _insert(services: Services, principal: Principal, upload_id: UUID, *, profile_name: str,
                  filename: str, length: int | None, storage_key: str, metadata: dict[str, str | None],
                  state: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    state = {"raw_metadata": "", "owner": (metadata.get("owner") or "")[:200],
             "session": (metadata.get("session") or "")[:200], **state}
    await Upload(
        id=upload_id, tenant=principal.tenant_id, method="tus", profile=profile_name, status="uploading",
        original_name=filename, content_type=declared_type(metadata),
        offset=0, length=length, storage_key=storage_key,
        metadata={"upload_metadata": metadata, "tus": state},
        expires_at=expiry(services.settings, now), created_at=now, updated_at=now,
    ).save()
    return await load_row(upload_id, principal.tenant_id)


def _location(request: Request[Any, Any, Any], upload_id: UUID) -> str:
    base = request.url.path.rstrip("/")
    return str(request.url.with_replacements(path=f"{base}/{upload_id}", query=""))


async def create_upload(request: Request[Any, Any, Any], principal: Principal, services: Services) -> Response[None]:
    """``POST /tus/``: creation, creation-with-upload, creation-defer-length, and concatenation (partial and
    final uploads)."""
    headers = request.headers
    require_tus_resumable(headers)
    concat = parse_concat(headers.get("upload-concat"))
    raw_metadata = headers.get("upload-metadata") or ""
    metadata = parse_metadata(raw_metadata)
    length = parse_non_negative("Upload-Length", headers.get("upload-length"))
    defer = headers.get("upload-defer-length")
    with_body = has_body(request)
    if with_body:
        require_offset_content_type(headers)
    if concat is not None and concat.kind == "final":
        if length is not None or defer is not None or with_body:
            raise BadRequest("A final upload takes no Upload-Length, Upload-Defer-Length or body: its "
                             "length is the sum of its partial uploads")
        return await _create_final(request, principal, services, concat, raw_metadata, metadata)
    if defer is not None and defer.strip() != "1":
        raise BadRequest("Upload-Defer-Length must be 1", details={"value": defer[:20]})
    if (length is None) == (defer is None):
        raise BadRequest("Send exactly one of Upload-Length and Upload-Defer-Length: 1")
    limit = max_upload_size(services.settings)
    if length is not None and length > limit:
        raise PayloadTooLarge(f"Upload-Length {length} is over Tus-Max-Size {limit}",
                              details={"upload_length": length, "max_size": limit})

    upload_id = uuid4()
    state: dict[str, Any] = {"raw_metadata": raw_metadata, "concat": concat.kind if concat else None}
    if concat is not None:  # partial: bytes for a later final upload, never an asset by itself
        profile_name = (metadata.get("profile") or "").strip()
        filename = sanitize_filename(metadata.get("filename") or metadata.get("name") or "")
        if profile_name:  # optional here; when given, the partial stays within its limit
            profile = get_profile(services.settings, profile_name)
            if length is not None and length > profile.max_bytes:
                raise PayloadTooLarge(
                    f"{length} bytes is over the {profile_name!r} limit of {profile.max_bytes} bytes",
                    details={"profile": profile_name, "max_bytes": profile.max_bytes, "size": length})
        storage_key = partial_key(principal.tenant_slug, upload_id)
    else:
        profile_name, profile, filename = _declared(services.settings, metadata, length, state)
        extension = check_declared(profile_name, profile, filename, length)  # 415 / 413 before any byte
        asset_id, storage_key = reserve_key(principal.tenant_slug, profile, extension)
        state.update(asset_id=str(asset_id), extension=extension)
    row = await _insert(services, principal, upload_id, profile_name=profile_name, filename=filename,
                        length=length, storage_key=storage_key, metadata=metadata, state=state)
    location = _location(request, upload_id)
    if with_body or length == 0:
        try:
            async with upload_lock(services.settings.database_url, upload_id):
                await write_at_offset(request, services, row, offset=0,
                                      checksum=parse_checksum(headers.get("upload-checksum")), new_length=None)
        except MediaServiceError as exc:  # the upload exists: say where, whatever went wrong after
            exc.headers.setdefault("Location", location)
            raise
    return Response(None, status_code=201, headers={"Location": location, **progress_headers(row)})


async def _create_final(request: Request[Any, Any, Any], principal: Principal, services: Services, concat: Concat,
                        raw_metadata: str, metadata: dict[str, str | None]) -> Response[None]:
    """concatenation: the partial uploads, complete, joined in order into the final key at once."""
    partials = [await _complete_partial(pid, principal) for pid in concat.partials]
    total = sum(p["length"] for p in partials)
    chosen: dict[str, Any] = {}
    profile_name, profile, filename = _declared(services.settings, metadata, total, chosen)
    extension = check_declared(profile_name, profile, filename, total)
    asset_id, storage_key = reserve_key(principal.tenant_slug, profile, extension)
    upload_id = uuid4()
    await _insert(services, principal, upload_id, profile_name=profile_name, filename=filename,
                  length=total, storage_key=storage_key, metadata=metadata, state={
                      "raw_metadata": raw_metadata, "concat": "final", "asset_id": str(asset_id),
                      "extension": extension, "partials": [str(p) for p in concat.partials],
                      "concat_urls": list(concat.urls), **chosen})
    location = _location(request, upload_id)
    store = store_for(services.storage, services.settings)
    try:
        locks = (upload_id, *dict.fromkeys(concat.partials))
        async with upload_lock(services.settings.database_url, *locks):
            partials = [await _complete_partial(pid, principal) for pid in concat.partials]  # again, locked
            row = await load_row(upload_id, principal.tenant_id)
            sha = await store.concat(row, partials)
            segments = [Segment(0, total, storage_key)] if isinstance(store, ObjectTusStore) else None
            await commit_offset(services.settings, row, Appended(total, False, segments, sha))
            remember_sha_state(upload_id, total, sha)
            await complete(services, store, row)
    except MediaServiceError as exc:
        exc.headers.setdefault("Location", location)
        raise
    return Response(None, status_code=201, headers={"Location": location, **progress_headers(row)})


async def _complete_partial(upload_id: UUID, principal: Principal) -> dict[str, Any]:
    """A partial upload of the caller's, complete (every byte received), to join into a final upload."""
    row = await load_row(upload_id, principal.tenant_id)
    ensure_alive(row)
    if not is_partial(row):
        raise BadRequest(f"Upload {upload_id} is not a partial upload (Upload-Concat: partial)",
                         details={"upload_id": str(upload_id)})
    if row["length"] is None or row["offset"] != row["length"]:
        raise BadRequest(f"Partial upload {upload_id} is not complete",
                         details={"upload_id": str(upload_id), "offset": row["offset"],
                                  "length": row["length"]})
    return row
