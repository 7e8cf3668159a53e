"""Serving stored bytes by signed URL: ``GET /media/serve/{key}`` (Range, ETag, conditional requests) and
``GET /media/stream/{key}`` (always proxied, for a stable base URL). On object stores ``serve`` redirects to a
short-lived presigned URL instead, so the bytes never pass through the app. The URLs are minted by
``mediasvc.media_urls.serve_url``; the responses are built by ``mediasvc.object_responses``."""

from __future__ import annotations

from typing import Any

from litestar import HttpMethod, Request, Response, route
from litestar.params import FromPath
from litestar.response import Redirect

from mediasvc.errors import BadRequest, Forbidden
from mediasvc.object_responses import respond_with_object
from mediasvc.openapi_doc import openapi_opt, signed_query
from mediasvc.services import ServicesDep
from mediasvc.signing import verify_path


# Signed URLs only the service mints: a Range gives 206, a matching If-None-Match 304, an object store a 302.
MEDIA_DOC = openapi_opt(public=True, errors=[400, 403, 416], parameters=signed_query("dl"), responses={
    206: {"description": "Partial content (Range)"}, 302: {"description": "Redirect to the object store"},
    304: {"description": "Not modified"}})


def _verified_key(request: Request[Any, Any, Any], key: str, services: Any, prefix: str) -> str:
    key = key.lstrip("/")
    if not key or ".." in key.split("/"):
        raise BadRequest("Invalid key")
    query = {k: v for k, v in request.query_params.items()}
    if not verify_path(services.settings.secret_key, f"/media/{prefix}/{key}", query):
        raise Forbidden("Invalid or expired signature")
    return key


@route("/media/serve/{key:path}", http_method=[HttpMethod.GET, HttpMethod.HEAD], opt=MEDIA_DOC,
       summary="Signed download")
async def serve_media(request: Request[Any, Any, Any], key: FromPath[str], services: ServicesDep) -> Response[Any]:
    key = _verified_key(request, key, services, "serve")
    if services.storage.local_path(key) is None:  # object store: the bytes go straight from there
        url = await services.storage.presign(key, method="GET", expires_in=300)
        return Redirect(url, status_code=302, headers={"Cache-Control": "no-store"})
    return await respond_with_object(request, services, key)


@route("/media/stream/{key:path}", http_method=[HttpMethod.GET, HttpMethod.HEAD], opt=MEDIA_DOC,
       summary="Signed download, proxied (no redirect)")
async def stream_media(request: Request[Any, Any, Any], key: FromPath[str], services: ServicesDep) -> Response[Any]:
    return await respond_with_object(request, services, _verified_key(request, key, services, "stream"))


MEDIA_ROUTES = [serve_media, stream_media]
