"""tus 1.0.0 resumable uploads at ``/api/v1/tus/`` (https://tus.io/protocols/resumable-upload).

Core protocol plus the extensions creation, creation-with-upload, creation-defer-length, termination, checksum
(sha1, sha256, md5), expiration and concatenation. ``Upload-Metadata`` carries ``filename`` and ``profile``
(required), and optionally ``session`` and ``owner``. The profile is checked (extension, Upload-Length against
its limit) before any byte is stored; the content is sniffed when the last byte arrives, and the upload
becomes an asset at the key reserved at creation (no copy). The final PATCH answers with
``Mediasvc-Asset-Id``.

Every response carries ``Tus-Resumable: 1.0.0``; errors use the JSON envelope. A PATCH holds the upload's
PostgreSQL advisory lock while it writes: a concurrent PATCH on the same upload, on any instance, gets 423.
``OPTIONS`` (capability discovery, also a CORS preflight) needs no API key; everything else does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

from litestar import Controller, Request, Response, delete, head, patch, post
from litestar.params import FromPath
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from mediasvc.auth import Principal, PrincipalDep
from mediasvc.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MediaServiceError,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from mediasvc.ingest.assets import reserve_key
from mediasvc.ingest.tus_errors import Gone, Locked
from mediasvc.ingest.tus_headers import (
    ASSET_ID_HEADER,
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    SUPPORTED_VERSIONS,
    TUS_VERSION,
    Checksum,
    Concat,
    http_date,
    parse_checksum,
    parse_concat,
    parse_metadata,
    parse_non_negative,
    require_offset_content_type,
    require_tus_resumable,
)
from mediasvc.ingest.tus_lock import upload_lock
from mediasvc.ingest.tus_store import (
    Appended,
    ObjectTusStore,
    Segment,
    partial_key,
    remember_sha_state,
    store_for,
)
from mediasvc.ingest.tus_uploads import (
    commit_offset,
    complete,
    ensure_alive,
    expiry,
    is_final,
    is_partial,
    load_row,
    max_upload_size,
    size_limit,
    terminate,
    tus_state,
    utcnow,
)
from mediasvc.ingest.validation import check_declared, get_profile, sanitize_filename
from mediasvc.profiles import Profile
from mediasvc.services import Services, ServicesDep
from mediasvc.settings import Settings
from mediasvc.tables import Upload

DRAIN_LIMIT = 16 * 1024 * 1024
DRAIN_SECONDS = 10.0


def tus_middleware(app: ASGIApp) -> ASGIApp:
    """``Tus-Resumable: 1.0.0`` on every response of the tus routes (errors included); the answer to
    ``OPTIONS`` (capability discovery; no key needed, like a CORS preflight) before any guard runs; and, when
    an error is answered before the request body was read (409, 423, 412...), the rest of the body (up to
    ``DRAIN_LIMIT``) is read and dropped first: a server that closes on unread data makes the client see a
    reset instead of the error (Granian does not linger on close)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            services: Services = scope["app"].state.services
            headers = [(b"tus-resumable", TUS_VERSION.encode())]
            headers += [(k.lower().encode(), v.encode()) for k, v in _capabilities(services).items()]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body_done = scope["method"] in ("GET", "HEAD", "DELETE")

        async def tracking_receive() -> Message:
            nonlocal body_done
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                body_done = True
            return message

        async def drain() -> None:
            dropped = 0
            with contextlib.suppress(Exception):
                async with asyncio.timeout(DRAIN_SECONDS):
                    while not body_done and dropped <= DRAIN_LIMIT:
                        dropped += len((await tracking_receive()).get("body", b""))

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] >= 400 and not body_done:
                    await drain()
                headers = [*message.get("headers", []), (b"tus-resumable", TUS_VERSION.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, tracking_receive, send_with_version)

    return middleware


def _capabilities(services: Services) -> dict[str, str]:
    return {
        "Tus-Version": ",".join(SUPPORTED_VERSIONS),
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(max_upload_size(services.settings)),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }


def _upload_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:  # no upload has such an id
        raise NotFound(f"Upload {raw[:60]!r} not found", details={"upload_id": raw[:60]}) from None


def _has_body(request: Request[Any, Any, Any]) -> bool:
    length = request.headers.get("content-length")
    if length is not None and length.strip():
        return length.strip() != "0"
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def _progress_headers(row: dict[str, Any]) -> dict[str, str]:
    headers = {"Upload-Offset": str(row["offset"]), "Cache-Control": "no-store"}
    if row["status"] == "uploading" and row["expires_at"] is not None:
        headers["Upload-Expires"] = http_date(row["expires_at"])
    if row.get("asset"):
        headers[ASSET_ID_HEADER] = str(row["asset"])
    return headers


@asynccontextmanager
async def _locked_row(services: Services, upload_id: UUID,
                      principal: Principal) -> AsyncIterator[dict[str, Any]]:
    """The caller's upload, read while holding its lock. When the lock is taken, the answer is 423 only for
    the caller's own upload: another tenant's (or a missing) one stays a 404, whatever it is doing."""
    try:
        async with upload_lock(services.settings.database_url, upload_id):
            yield await load_row(upload_id, principal.tenant_id)
    except Locked:
        await load_row(upload_id, principal.tenant_id)
        raise


def _declared(settings: Settings, metadata: dict[str, str | None]) -> tuple[str, Profile, str]:
    """The profile (required) and the sanitized file name an upload declares in its Upload-Metadata."""
    profile_name = (metadata.get("profile") or "").strip()
    if not profile_name:
        raise ValidationFailed("Upload-Metadata must carry 'profile'",
                               details={"available": sorted(settings.profiles)})
    filename = sanitize_filename(metadata.get("filename") or metadata.get("name") or "")
    return profile_name, get_profile(settings, profile_name), filename


async def _insert(services: Services, principal: Principal, upload_id: UUID, *, profile_name: str,
                  filename: str, length: int | None, storage_key: str, metadata: dict[str, str | None],
                  state: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    state = {"raw_metadata": "", "owner": (metadata.get("owner") or "")[:200],
             "session": (metadata.get("session") or "")[:200], **state}
    await Upload(
        id=upload_id, tenant=principal.tenant_id, method="tus", profile=profile_name, status="uploading",
        original_name=filename, content_type=(metadata.get("filetype") or metadata.get("type") or "")[:200],
        offset=0, length=length, storage_key=storage_key,
        metadata={"upload_metadata": metadata, "tus": state},
        expires_at=expiry(services.settings, now), created_at=now, updated_at=now,
    ).save()
    return await load_row(upload_id, principal.tenant_id)


def _location(request: Request[Any, Any, Any], upload_id: UUID) -> str:
    base = request.url.path.rstrip("/")
    return str(request.url.with_replacements(path=f"{base}/{upload_id}", query=""))


class TusController(Controller):
    path = "/tus"
    tags = ["tus"]
    middleware = [tus_middleware]

    # OPTIONS (discovery) is answered by ``tus_middleware``: Litestar replaces an OPTIONS handler declared
    # here with its own automatic one once the controller is mounted under the /api/v1 router.

    # --- creation -------------------------------------------------------------------------------------------

    @post("/", status_code=201, request_max_body_size=None,
          summary="Create an upload (creation, creation-with-upload, creation-defer-length, concatenation)")
    async def create(self, request: Request[Any, Any, Any], principal: PrincipalDep,
                     services: ServicesDep) -> Response[None]:
        headers = request.headers
        require_tus_resumable(headers)
        concat = parse_concat(headers.get("upload-concat"))
        raw_metadata = headers.get("upload-metadata") or ""
        metadata = parse_metadata(raw_metadata)
        length = parse_non_negative("Upload-Length", headers.get("upload-length"))
        defer = headers.get("upload-defer-length")
        with_body = _has_body(request)
        if with_body:
            require_offset_content_type(headers)
        if concat is not None and concat.kind == "final":
            if length is not None or defer is not None or with_body:
                raise BadRequest("A final upload takes no Upload-Length, Upload-Defer-Length or body: its "
                                 "length is the sum of its partial uploads")
            return await self._create_final(request, principal, services, concat, raw_metadata, metadata)
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
            profile_name, profile, filename = _declared(services.settings, metadata)
            extension = check_declared(profile_name, profile, filename, length)  # 415 / 413 before any byte
            asset_id, storage_key = reserve_key(principal.tenant_slug, profile, extension)
            state.update(asset_id=str(asset_id), extension=extension)
        row = await _insert(services, principal, upload_id, profile_name=profile_name, filename=filename,
                            length=length, storage_key=storage_key, metadata=metadata, state=state)
        location = _location(request, upload_id)
        if with_body or length == 0:
            try:
                async with upload_lock(services.settings.database_url, upload_id):
                    await self._write(request, services, row, offset=0, checksum=parse_checksum(
                        headers.get("upload-checksum")), new_length=None)
            except MediaServiceError as exc:  # the upload exists: say where, whatever went wrong after
                exc.headers.setdefault("Location", location)
                raise
        return Response(None, status_code=201, headers={"Location": location, **_progress_headers(row)})

    async def _create_final(self, request: Request[Any, Any, Any], principal: Principal, services: Services,
                            concat: Concat, raw_metadata: str,
                            metadata: dict[str, str | None]) -> Response[None]:
        """concatenation: the partial uploads, complete, joined in order into the final key at once."""
        partials = [await self._partial(pid, principal) for pid in concat.partials]
        total = sum(p["length"] for p in partials)
        profile_name, profile, filename = _declared(services.settings, metadata)
        extension = check_declared(profile_name, profile, filename, total)
        asset_id, storage_key = reserve_key(principal.tenant_slug, profile, extension)
        upload_id = uuid4()
        await _insert(services, principal, upload_id, profile_name=profile_name, filename=filename,
                      length=total, storage_key=storage_key, metadata=metadata, state={
                          "raw_metadata": raw_metadata, "concat": "final", "asset_id": str(asset_id),
                          "extension": extension, "partials": [str(p) for p in concat.partials],
                          "concat_urls": list(concat.urls)})
        location = _location(request, upload_id)
        store = store_for(services.storage, services.settings)
        try:
            locks = (upload_id, *dict.fromkeys(concat.partials))
            async with upload_lock(services.settings.database_url, *locks):
                partials = [await self._partial(pid, principal) for pid in concat.partials]  # again, locked
                row = await load_row(upload_id, principal.tenant_id)
                sha = await store.concat(row, partials)
                segments = [Segment(0, total, storage_key)] if isinstance(store, ObjectTusStore) else None
                await commit_offset(services.settings, row, Appended(total, False, segments, sha))
                remember_sha_state(upload_id, total, sha)
                await complete(services, store, row)
        except MediaServiceError as exc:
            exc.headers.setdefault("Location", location)
            raise
        return Response(None, status_code=201, headers={"Location": location, **_progress_headers(row)})

    @staticmethod
    async def _partial(upload_id: UUID, principal: Principal) -> dict[str, Any]:
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

    # --- core -----------------------------------------------------------------------------------------------

    @head("/{upload_id:str}", summary="An upload's offset, length, metadata and expiry")
    async def upload_status(self, upload_id: FromPath[str], request: Request[Any, Any, Any],
                            principal: PrincipalDep) -> Response[None]:
        require_tus_resumable(request.headers)
        row = await load_row(_upload_id(upload_id), principal.tenant_id)
        ensure_alive(row)
        headers = _progress_headers(row)
        if row["length"] is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(row["length"])
        state = tus_state(row)
        if state.get("raw_metadata"):
            headers["Upload-Metadata"] = state["raw_metadata"]
        if is_partial(row):
            headers["Upload-Concat"] = "partial"
        elif is_final(row):
            headers["Upload-Concat"] = "final;" + " ".join(state.get("concat_urls", []))
        return Response(None, status_code=200, headers=headers)

    @patch("/{upload_id:str}", request_max_body_size=None, status_code=204,
           summary="Append bytes at Upload-Offset (Content-Type: application/offset+octet-stream)")
    async def append(self, upload_id: FromPath[str], request: Request[Any, Any, Any], principal: PrincipalDep,
                     services: ServicesDep) -> Response[None]:
        return await self._append(_upload_id(upload_id), request, principal, services)

    @delete("/{upload_id:str}", status_code=204, summary="Terminate an upload: its bytes are removed")
    async def terminate(self, upload_id: FromPath[str], request: Request[Any, Any, Any],
                        principal: PrincipalDep, services: ServicesDep) -> Response[None]:
        return await self._terminate(_upload_id(upload_id), request, principal, services)

    @post("/{upload_id:str}", request_max_body_size=None, status_code=204, include_in_schema=False)
    async def method_override(self, upload_id: FromPath[str], request: Request[Any, Any, Any],
                              principal: PrincipalDep, services: ServicesDep) -> Response[None]:
        """Clients that cannot send PATCH or DELETE send POST with ``X-HTTP-Method-Override``."""
        method = request.headers.get("x-http-method-override", "").upper()
        if method == "PATCH":
            return await self._append(_upload_id(upload_id), request, principal, services)
        if method == "DELETE":
            return await self._terminate(_upload_id(upload_id), request, principal, services)
        raise BadRequest("POST to an upload needs X-HTTP-Method-Override: PATCH or DELETE")

    async def _append(self, upload_id: UUID, request: Request[Any, Any, Any], principal: Principal,
                      services: Services) -> Response[None]:
        headers = request.headers
        require_tus_resumable(headers)
        require_offset_content_type(headers)
        offset = parse_non_negative("Upload-Offset", headers.get("upload-offset"), required=True)
        checksum = parse_checksum(headers.get("upload-checksum"))
        new_length = parse_non_negative("Upload-Length", headers.get("upload-length"))
        async with _locked_row(services, upload_id, principal) as row:
            ensure_alive(row)
            if is_final(row):
                raise Forbidden("A final (concatenated) upload cannot be patched",
                                details={"upload_id": str(upload_id)})
            await self._write(request, services, row, offset=offset, checksum=checksum, new_length=new_length)
        return Response(None, status_code=204, headers=_progress_headers(row))

    async def _write(self, request: Request[Any, Any, Any], services: Services, row: dict[str, Any], *,
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
        if row["status"] == "uploading" and row["length"] is not None and row["offset"] == row["length"]:
            await complete(services, store, row)

    async def _terminate(self, upload_id: UUID, request: Request[Any, Any, Any], principal: Principal,
                         services: Services) -> Response[None]:
        require_tus_resumable(request.headers)
        async with _locked_row(services, upload_id, principal) as row:
            if row["status"] in ("aborted", "expired", "failed"):
                raise Gone(f"Upload {upload_id} is already gone", details={"status": row["status"]})
            await terminate(store_for(services.storage, services.settings), row)
        return Response(None, status_code=204)

