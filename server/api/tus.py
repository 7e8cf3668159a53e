"""tus 1.0.0 resumable uploads at ``/api/v1/tus/`` (https://tus.io/protocols/resumable-upload).

Core protocol plus the extensions creation, creation-with-upload, creation-defer-length, termination, checksum
(sha1, sha256, md5), expiration and concatenation. ``Upload-Metadata`` carries ``filename``, ``filetype``,
``profile`` (without it, ``[plugins.tus] default_profile`` chooses: ``mediasvc.ingest.tus_profile``), and
optionally ``session`` and ``owner``. The profile is checked (extension, Upload-Length against its limit)
before any byte is stored; the content is sniffed when the last byte arrives (a profile the client did not
name: when the first bytes are in), and the upload becomes an asset at the key reserved at creation (no copy).
The final PATCH answers with ``Mediasvc-Asset-Id``.

Every response carries ``Tus-Resumable: 1.0.0``; errors use the JSON envelope. A PATCH holds the upload's
PostgreSQL advisory lock while it writes: a concurrent PATCH on the same upload, on any instance, gets 423.
``OPTIONS`` (capability discovery, also a CORS preflight) needs no API key; everything else does.

This module holds the routes; beside it: ``tus_middleware`` (what every route answers the same way),
``tus_create`` (creation and concatenation) and ``tus_write`` (a body written under the lock). The upload rows
and bytes are ``mediasvc.ingest.tus_uploads`` and ``mediasvc.ingest.tus_store``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, head, patch, post
from litestar.params import FromPath

from mediasvc.api import tus_doc
from mediasvc.api.tus_create import create_upload
from mediasvc.api.tus_middleware import tus_middleware
from mediasvc.api.tus_write import locked_row, parse_upload_id, progress_headers, write_at_offset
from mediasvc.auth import Principal, PrincipalDep
from mediasvc.errors import BadRequest, Forbidden
from mediasvc.ingest.tus_errors import Gone
from mediasvc.ingest.tus_headers import (
    parse_checksum,
    parse_non_negative,
    require_offset_content_type,
    require_tus_resumable,
)
from mediasvc.ingest.tus_store import store_for
from mediasvc.ingest.tus_uploads import ensure_alive, is_final, is_partial, load_row, terminate, tus_state
from mediasvc.services import Services, ServicesDep


class TusController(Controller):
    path = "/tus"
    tags = ["tus"]
    middleware = [tus_middleware]

    # OPTIONS (discovery) is answered by ``tus_middleware``: Litestar replaces an OPTIONS handler declared
    # here with its own automatic one once the controller is mounted under the /api/v1 router.

    @post("/", status_code=201, request_max_body_size=None, opt=tus_doc.CREATE,
          summary="Create an upload (creation, creation-with-upload, creation-defer-length, concatenation)")
    async def create(self, request: Request[Any, Any, Any], principal: PrincipalDep,
                     services: ServicesDep) -> Response[None]:
        return await create_upload(request, principal, services)

    # --- core -----------------------------------------------------------------------------------------------

    @head("/{upload_id:str}", opt=tus_doc.STATUS, summary="An upload's offset, length, metadata and expiry")
    async def upload_status(self, upload_id: FromPath[str], request: Request[Any, Any, Any],
                            principal: PrincipalDep) -> Response[None]:
        require_tus_resumable(request.headers)
        row = await load_row(parse_upload_id(upload_id), principal.tenant_id)
        ensure_alive(row)
        headers = progress_headers(row)
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

    @patch("/{upload_id:str}", request_max_body_size=None, status_code=204, opt=tus_doc.APPEND,
           summary="Append bytes at Upload-Offset (Content-Type: application/offset+octet-stream)")
    async def append(self, upload_id: FromPath[str], request: Request[Any, Any, Any], principal: PrincipalDep,
                     services: ServicesDep) -> Response[None]:
        return await self._append(parse_upload_id(upload_id), request, principal, services)

    @delete("/{upload_id:str}", status_code=204, opt=tus_doc.TERMINATE,
            summary="Terminate an upload: its bytes are removed")
    async def terminate(self, upload_id: FromPath[str], request: Request[Any, Any, Any],
                        principal: PrincipalDep, services: ServicesDep) -> Response[None]:
        return await self._terminate(parse_upload_id(upload_id), request, principal, services)

    @post("/{upload_id:str}", request_max_body_size=None, status_code=204, opt=tus_doc.OVERRIDE,
          summary="PATCH or DELETE for clients that cannot send them (X-HTTP-Method-Override)")
    async def method_override(self, upload_id: FromPath[str], request: Request[Any, Any, Any],
                              principal: PrincipalDep, services: ServicesDep) -> Response[None]:
        """Clients that cannot send PATCH or DELETE send POST with ``X-HTTP-Method-Override``."""
        method = request.headers.get("x-http-method-override", "").upper()
        if method == "PATCH":
            return await self._append(parse_upload_id(upload_id), request, principal, services)
        if method == "DELETE":
            return await self._terminate(parse_upload_id(upload_id), request, principal, services)
        raise BadRequest("POST to an upload needs X-HTTP-Method-Override: PATCH or DELETE")

    async def _append(self, upload_id: UUID, request: Request[Any, Any, Any], principal: Principal,
                      services: Services) -> Response[None]:
        headers = request.headers
        require_tus_resumable(headers)
        require_offset_content_type(headers)
        offset = parse_non_negative("Upload-Offset", headers.get("upload-offset"), required=True)
        checksum = parse_checksum(headers.get("upload-checksum"))
        new_length = parse_non_negative("Upload-Length", headers.get("upload-length"))
        async with locked_row(services, upload_id, principal) as row:
            ensure_alive(row)
            if is_final(row):
                raise Forbidden("A final (concatenated) upload cannot be patched",
                                details={"upload_id": str(upload_id)})
            await write_at_offset(request, services, row, offset=offset, checksum=checksum,
                                  new_length=new_length)
        return Response(None, status_code=204, headers=progress_headers(row))

    async def _terminate(self, upload_id: UUID, request: Request[Any, Any, Any], principal: Principal,
                         services: Services) -> Response[None]:
        require_tus_resumable(request.headers)
        async with locked_row(services, upload_id, principal) as row:
            if row["status"] in ("aborted", "expired", "failed"):
                raise Gone(f"Upload {upload_id} is already gone", details={"status": row["status"]})
            await terminate(store_for(services.storage, services.settings), row)
        return Response(None, status_code=204)
