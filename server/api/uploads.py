"""Uploads: the clients' view of any upload (tus or presigned), and presigned direct uploads.

Under ``/api/v1`` (API key): ``POST /uploads`` (initiate), ``GET /uploads/{id}``, ``POST /uploads/{id}/confirm``,
``POST /uploads/{id}/abort``, ``POST /uploads/{id}/complete-multipart``. At the root, authenticated by signature
instead of key: ``PUT /media/uploads/{id}?size=&type=&exp=&sig=`` (the local backend's presigned PUT).
The logic lives in ``mediasvc.ingest.presigned``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, get, post, put
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from mediasvc.auth import PrincipalDep
from mediasvc.ingest import presigned
from mediasvc.ingest.presigned import LocalPutReceived, UploadConfirmed, UploadCreate, UploadTicket, UploadView
from mediasvc.openapi_doc import binary_body, openapi_opt, signed_query
from mediasvc.services import ServicesDep


class UploadController(Controller):
    path = "/uploads"
    tags = ["uploads"]

    @post("/", status_code=HTTP_201_CREATED, opt=openapi_opt(errors=[413, 415, 503]),
          summary="Start a presigned direct upload: where to PUT the bytes, then confirm")
    async def create_upload(self, data: JSONBody[UploadCreate], principal: PrincipalDep,
                            services: ServicesDep) -> UploadTicket:
        return await presigned.initiate(services, principal.tenant_id, principal.tenant_slug, data)

    @get("/{upload_id:uuid}", summary="One upload (tus or presigned) of the caller's tenant")
    async def get_upload(self, upload_id: FromPath[UUID], principal: PrincipalDep) -> UploadView:
        return presigned.to_view(await presigned.get_upload_row(upload_id, principal.tenant_id))

    @post("/{upload_id:uuid}/confirm", status_code=HTTP_200_OK, opt=openapi_opt(errors=[409, 413, 415, 503]),
          summary="Check the uploaded object (size, sniffed type) and make the asset; idempotent")
    async def confirm_upload(self, upload_id: FromPath[UUID], principal: PrincipalDep,
                             services: ServicesDep) -> UploadConfirmed:
        return await presigned.confirm(services, principal.tenant_id, upload_id)

    @post("/{upload_id:uuid}/abort", status_code=HTTP_200_OK, opt=openapi_opt(errors=[409, 503]),
          summary="Abort: remove what was written")
    async def abort_upload(self, upload_id: FromPath[UUID], principal: PrincipalDep,
                           services: ServicesDep) -> UploadView:
        return await presigned.abort(services, principal.tenant_id, upload_id)

    @post("/{upload_id:uuid}/complete-multipart", status_code=HTTP_200_OK, opt=openapi_opt(errors=[409, 503]),
          summary="S3 multipart: check every part arrived and assemble the object (confirm also does this)")
    async def complete_multipart(self, upload_id: FromPath[UUID], principal: PrincipalDep,
                                 services: ServicesDep) -> UploadView:
        return await presigned.complete_multipart(services, principal.tenant_id, upload_id)


@put(f"{presigned.LOCAL_PUT_PREFIX}{{upload_id:uuid}}", status_code=HTTP_200_OK, request_max_body_size=None,
     opt=openapi_opt(errors=[400, 403, 409, 411, 413, 415], parameters=signed_query("size", "type"),
                     body=binary_body("application/octet-stream")),
     tags=["uploads"], summary="The local backend's presigned PUT (signed URL from POST /api/v1/uploads)")
async def put_local_upload(upload_id: FromPath[UUID], request: Request[Any, Any, Any],
                           services: ServicesDep) -> LocalPutReceived:
    return await presigned.receive_local_put(services, upload_id, request)


# Routes outside /api/v1 that authenticate by signature instead of API key (the local backend's presigned PUT).
PUBLIC_UPLOAD_ROUTES: list = [put_local_upload]
