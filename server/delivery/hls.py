"""Token-checked HLS: ``GET /hls/{token}/{asset_id}/{path}``.

The token is a path segment, so every relative URI in the master and variant playlists keeps it without any
rewriting. Playlists are read from storage and, when segments should not pass through the app (presigned
object-store URLs, a CDN), rewritten on the fly. Playlists are cacheable for a moment only; segments forever.
CORS is open to any origin (``mediasvc.cors``): the token, not a cookie, is the credential.
"""

from __future__ import annotations

import re
import time
from typing import Any
from uuid import UUID

from litestar import HttpMethod, Request, Response, route
from litestar.params import FromPath
from litestar.response import Redirect

from mediasvc.delivery.lookup import PlaybackTarget, playback_target, playlist_cache_control
from mediasvc.delivery.playlists import rewrite_segments
from mediasvc.delivery.tokens import verify_token
from mediasvc.errors import BadRequest, Conflict, NotFound
from mediasvc.object_responses import STORED_BYTES_HEADERS, respond_with_object
from mediasvc.openapi_doc import openapi_opt
from mediasvc.services import ServicesDep
from mediasvc.settings import Settings

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SAFE_PATH = re.compile(r"^[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*\.(?:m3u8|ts|m4s|mp4|aac|vtt)$")
SEGMENT_CACHE = "private, max-age=31536000, immutable"


def client_ip(request: Request[Any, Any, Any], settings: Settings) -> str | None:
    if settings.playback.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.client.host if request.client else None


def segment_delivery(services: Any) -> str:
    configured = services.settings.playback.segment_delivery
    if configured:
        return configured
    return "proxy" if services.storage.local_path("probe") is not None else "presign"


async def _target(asset_id: UUID) -> PlaybackTarget:
    target = await playback_target(asset_id)
    if target is None:
        raise NotFound(f"Asset {asset_id} not found", details={"asset_id": str(asset_id)})
    if target.hls_base is None:
        raise Conflict("The asset has no HLS rendition yet", details={"status": target.status})
    return target


@route("/hls/{token:str}/{asset_id:uuid}/{path:path}", http_method=[HttpMethod.GET, HttpMethod.HEAD],
       opt=openapi_opt(public=True, errors=[400, 403, 409, 416], responses={206: {"description": "Partial content"},
                                                                         304: {"description": "Not modified"}}),
       summary="Token-protected HLS playlists and segments", tags=["playback"])
async def hls_file(request: Request[Any, Any, Any], token: FromPath[str], asset_id: FromPath[UUID],
                   path: FromPath[str], services: ServicesDep) -> Response[Any]:
    return await _hls_file(request, token, asset_id, path, services)


async def _hls_file(request: Request[Any, Any, Any], token: str, asset_id: UUID, path: str,
                    services: Any) -> Response[Any]:
    settings = services.settings
    claims = verify_token(settings, token, asset_id, client_ip=client_ip(request, settings))
    path = path.lstrip("/")
    if not SAFE_PATH.match(path):
        raise BadRequest("Not an HLS path", details={"path": path})
    target = await _target(asset_id)
    key = f"{target.hls_base}/{path}"
    mode = segment_delivery(services)
    if path.endswith(".m3u8"):
        return await _playlist(services, key, mode, expires_at=claims.e, target=target)
    if mode != "proxy":  # a player asked the proxy for a segment anyway: send it to where the bytes are
        return Redirect(await _segment_url(services, key, mode, claims.e), status_code=302)
    return await respond_with_object(request, services, key, cache_control=SEGMENT_CACHE)


async def _playlist(services: Any, key: str, mode: str, *, expires_at: int,
                    target: PlaybackTarget) -> Response[bytes]:
    try:
        text = (await services.storage.get_bytes(key)).decode()
    except (FileNotFoundError, NotFound):
        raise NotFound("No such playlist", details={"path": key.rsplit("/", 1)[-1]}) from None
    if mode != "proxy":
        text = await rewrite_segments(text, key, lambda k: _segment_url(services, k, mode, expires_at))
    cache = playlist_cache_control(target, services.settings.playback.playlist_max_age_seconds)
    return Response(text.encode(), media_type=PLAYLIST_TYPE, headers={"Cache-Control": cache, **STORED_BYTES_HEADERS})


async def _segment_url(services: Any, key: str, mode: str, expires_at: int) -> str:
    if mode == "cdn":
        return f"{services.settings.playback.segment_base_url.rstrip('/')}/{key}"
    ttl = max(60, min(expires_at - int(time.time()), services.settings.storage.signed_url_ttl_seconds))
    return await services.storage.presign(key, method="GET", expires_in=ttl)


HLS_ROUTES = [hls_file]
